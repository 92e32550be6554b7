package zonerbac_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/test/zonerbac"
)

// TestGrant grants the chart's rules on a real API server and asks its
// RBAC authorizer what the ServiceAccount may do: what the rules name, in
// the right namespaces, and nothing else; granting again with a verb
// removed takes it away.
func TestGrant(t *testing.T) {
	env := kubeenv.Start(t)
	admin := env.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns, sa = "atoll-system", "atoll-zone"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rules, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	if err := zonerbac.Grant(ctx, admin, ns, sa, rules); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		verb, group, resource, namespace string
		want                             bool
	}{
		{"watch", "", "pods", "", true},
		{"list", "", "pods", "kong", true},
		{"update", "", "pods", "kong", false},
		{"patch", "", "services", "kong", true},
		{"delete", "", "services", "kong", false},
		{"get", "", "namespaces", "", true},
		{"create", "", "events", "kong", true},
		{"create", "authentication.k8s.io", "tokenreviews", "", true},
		{"get", "", "secrets", ns, false},
		{"list", "", "secrets", "", false},
		{"create", "atoll.io", "dataplanes", "kong", true},
		{"get", "atoll.io", "dataplanes", "kong", false},
		{"update", "atoll.io", "zoneingresses", ns, true},
		{"update", "atoll.io", "zoneingresses", "kong", false},
		{"list", "atoll.io", "meshes", "", false},
		{"update", "atoll.io", "zones", ns, false},
		{"update", "coordination.k8s.io", "leases", ns, true},
		{"update", "coordination.k8s.io", "leases", "kube-system", false},
		{"delete", "coordination.k8s.io", "leases", ns, false},
	} {
		if got := allowed(ctx, t, admin, ns, sa, c.verb, c.group, c.resource, c.namespace); got != c.want {
			t.Errorf("%s %s.%s in namespace %q: allowed = %v, want %v", c.verb, c.resource, c.group, c.namespace, got, c.want)
		}
	}

	less, err := rules.Without("", "services", "patch")
	if err != nil {
		t.Fatal(err)
	}
	if err := zonerbac.Grant(ctx, admin, ns, sa, less); err != nil {
		t.Fatal(err)
	}
	if allowed(ctx, t, admin, ns, sa, "patch", "", "services", "kong") {
		t.Error("patch on services still allowed after granting the rules without it")
	}
	if !allowed(ctx, t, admin, ns, sa, "watch", "", "services", "kong") {
		t.Error("watch on services refused after removing patch only")
	}
}

// allowed asks the API server's authorizer whether the ServiceAccount
// ns/sa may do verb on group/resource in namespace ("" for all).
func allowed(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, sa, verb, group, resource, namespace string) bool {
	t.Helper()
	review, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + ns + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Group: group, Resource: resource, Namespace: namespace},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview: %v", err)
	}
	return review.Status.Allowed
}
