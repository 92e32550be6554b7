package kubeenv_test

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// TestVersionMatchesToolsModule keeps kubeenv.Version, which names the
// cached binary, equal to the version `make kube-apiserver` builds.
func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile("../kubeapiserver/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes (v\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("test/kubeapiserver/go.mod does not require k8s.io/kubernetes")
	}
	if got := string(m[1]); got != kubeenv.Version {
		t.Errorf("test/kubeapiserver/go.mod pins k8s.io/kubernetes %s, kubeenv.Version is %s: change both together", got, kubeenv.Version)
	}
}

// TestEnv proves the environment is a real apiserver: objects are
// validated and stored, the status subresource takes a pod IP, Services get
// cluster IPs, ServiceAccount tokens pass TokenReview, and RBAC decides what a ServiceAccount's token may do.
func TestEnv(t *testing.T) {
	start := time.Now()
	env := kubeenv.Start(t)
	t.Logf("etcd and kube-apiserver ready in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := env.Clientset(t)
	const ns = "shop"

	if v, err := admin.Discovery().ServerVersion(); err != nil {
		t.Fatalf("server version: %v", err)
	} else if v.GitVersion != kubeenv.Version {
		t.Errorf("server version = %s, want the pinned %s (rebuild: remove the cached binary, make kube-apiserver)", v.GitVersion, kubeenv.Version)
	}

	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}

	labels := map[string]string{"app": "backend"}
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "backend-1", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "backend:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	// Play the kubelet: report the pod running with an IP.
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.244.0.7"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0.7"}}
	if _, err := admin.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pod status: %v", err)
	}
	got, err := admin.CoreV1().Pods(ns).Get(ctx, "backend-1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if got.Status.PodIP != "10.244.0.7" || got.Status.Phase != corev1.PodRunning {
		t.Errorf("pod status = %s %q, want Running 10.244.0.7", got.Status.Phase, got.Status.PodIP)
	}

	// A real apiserver validates: a pod IP that is not an IP is refused.
	got.Status.PodIP, got.Status.PodIPs = "not-an-ip", []corev1.PodIP{{IP: "not-an-ip"}}
	if _, err := admin.CoreV1().Pods(ns).UpdateStatus(ctx, got, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("pod status with IP %q: err = %v, want Invalid", "not-an-ip", err)
	}

	svc, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Errorf("service cluster IP = %q, want one allocated from %s", svc.Spec.ClusterIP, kubeenv.ServiceCIDR)
	}

	// A ServiceAccount allowed to get pods, and nothing else.
	const sa = "reader"
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-getter"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-gets-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-getter"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}

	// TokenReview, as the zone will check a proxy's ServiceAccount token.
	review, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: env.ServiceAccountToken(t, ns, sa)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token review: %v", err)
	}
	if want := "system:serviceaccount:" + ns + ":" + sa; !review.Status.Authenticated || review.Status.User.Username != want {
		t.Errorf("token review = authenticated %v as %q (%s), want %q", review.Status.Authenticated, review.Status.User.Username, review.Status.Error, want)
	}
	review, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token review: %v", err)
	}
	if review.Status.Authenticated {
		t.Errorf("token review of a made-up token: authenticated as %q", review.Status.User.Username)
	}

	reader, err := kubernetes.NewForConfig(env.ServiceAccountConfig(t, ns, sa))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := reader.CoreV1().Pods(ns).Get(ctx, "backend-1", metav1.GetOptions{}); err != nil {
		t.Errorf("service account get pod: %v", err)
	} else if p.Status.PodIP != "10.244.0.7" {
		t.Errorf("service account sees pod IP %q, want 10.244.0.7", p.Status.PodIP)
	}
	if _, err := reader.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("service account list services: err = %v, want Forbidden", err)
	}
	if _, err := reader.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("service account list pods (only get is bound): err = %v, want Forbidden", err)
	}
}
