package kubernetes_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/test/zonerbac"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// zoneConfig binds the zone's ServiceAccount (in atoll-system, created
// when missing) to exactly the chart's RBAC rules and returns a client
// config with its token, so a test runs the controller with no more than
// an installed zone may do.
func zoneConfig(t *testing.T, env *kubeenv.Env) *rest.Config {
	t.Helper()
	const ns, sa = "atoll-system", "atoll-zone"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := env.Clientset(t)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, namespace(ns, nil, nil), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rules, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	if err := zonerbac.Grant(ctx, admin, ns, sa, rules); err != nil {
		t.Fatal(err)
	}
	return env.ServiceAccountConfig(t, ns, sa)
}

// TestControllerUnderZoneRBAC runs the controller and the CRD store as the
// zone's ServiceAccount, bound to the chart's rules less what a step takes
// away: without list and watch on pods its caches cannot fill, without create on
// dataplanes its first reconcile cannot write, and Ready names each refusal
// and the rules to grant; with exactly the chart's rules it works.
func TestControllerUnderZoneRBAC(t *testing.T) {
	env := kubeenv.Start(t)
	admin := env.Clientset(t)
	adminDyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := crdstore.InstallCRDs(ctx, adminDyn, filepath.Join("..", "..", "charts", "atoll", "crds")); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	const ns, sa = "atoll-system", "atoll-zone"
	k := cluster{t: t, client: admin}
	k.namespace(ns, false)
	k.namespace("apps", true)
	k.service(service("apps", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromInt32(8080))))
	k.pod(newPod("apps", "web-0", map[string]string{"app": "web"}))

	rules, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	noCreate, err := rules.Without("atoll.io", "dataplanes", "create")
	if err != nil {
		t.Fatal(err)
	}
	// The informers need list or watch: a watch alone serves the first
	// list as a stream of events (client-go's WatchList), so take both.
	noCreateNoPods, err := noCreate.Without("", "pods", "list")
	if err == nil {
		noCreateNoPods, err = noCreateNoPods.Without("", "pods", "watch")
	}
	if err != nil {
		t.Fatal(err)
	}
	grant := func(r zonerbac.Rules) {
		t.Helper()
		if err := zonerbac.Grant(ctx, admin, ns, sa, r); err != nil {
			t.Fatal(err)
		}
	}
	grant(noCreateNoPods)

	saConfig := env.ServiceAccountConfig(t, ns, sa)
	client, err := kubernetes.NewClientset(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	owners := &lateOwners{}
	st, err := crdstore.New(crdstore.Config{Client: dyn, Namespace: ns,
		Owners: func(r *resource.Resource) []metav1.OwnerReference { return owners.c.Owners(r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: "zone-1"})
	if err != nil {
		t.Fatal(err)
	}
	owners.c = c
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})

	readyNames := func(what string, parts ...string) {
		t.Helper()
		eventually(t, "Ready to report "+what, func() (bool, string) {
			err := c.Ready()
			if err == nil {
				return false, "Ready() = nil"
			}
			for _, p := range append(parts, zonerbac.Dir("")) {
				if !strings.Contains(err.Error(), p) {
					return false, "Ready() = " + err.Error()
				}
			}
			return true, ""
		})
	}
	readyNames("that reading pods is forbidden", `is forbidden`, `resource "pods"`)

	grant(noCreate)
	readyNames("that creating dataplanes is forbidden", `cannot create resource "dataplanes"`, `in the namespace "apps"`)

	grant(rules)
	eventually(t, "Ready once the chart's rules are granted", func() (bool, string) {
		if err := c.Ready(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	dataplaneIs(t, st, resource.DefaultMesh, "apps", "web-0", "the pod's Dataplane", func(r *resource.Resource) (bool, string) {
		return r != nil, "no Dataplane"
	})
}
