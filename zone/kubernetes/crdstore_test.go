package kubernetes_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// lateOwners lets the store ask a controller made after it for owners.
type lateOwners struct{ c *kubernetes.Controller }

// TestControllerWithCRDStore runs the controller over the CRD-backed
// store, as a Kubernetes zone does: a pod's Dataplane is an object in the
// pod's namespace, owned by the pod. Both run as the zone's ServiceAccount
// bound to the chart's RBAC rules.
func TestControllerWithCRDStore(t *testing.T) {
	env := kubeenv.Start(t)
	cfg := env.Config()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join("..", "..", "charts", "atoll", "crds")); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	client, err := kubernetes.NewClientset(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := cluster{t: t, client: client}
	k.namespace("atoll-system", false)
	// The store and the controller run as the zone's ServiceAccount.
	zoneCfg := zoneConfig(t, env)
	zoneDyn, err := dynamic.NewForConfig(zoneCfg)
	if err != nil {
		t.Fatal(err)
	}
	zoneClient, err := kubernetes.NewClientset(zoneCfg)
	if err != nil {
		t.Fatal(err)
	}
	owners := &lateOwners{}
	st, err := crdstore.New(crdstore.Config{Client: zoneDyn, Namespace: "atoll-system",
		Owners: func(r *resource.Resource) []metav1.OwnerReference { return owners.c.Owners(r) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := kubernetes.NewController(kubernetes.Config{Client: zoneClient, Store: st, Zone: "zone-1"})
	if err != nil {
		t.Fatal(err)
	}
	owners.c = c
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	k.namespace("apps", true)
	k.service(service("apps", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromInt32(8080))))
	k.pod(newPod("apps", "web-0", map[string]string{"app": "web"}))
	pod, err := client.CoreV1().Pods("apps").Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dataplaneIs(t, st, resource.DefaultMesh, "apps", "web-0", "the pod's Dataplane", func(r *resource.Resource) (bool, string) {
		return r != nil, "no Dataplane"
	})
	gvr := schema.GroupVersionResource{Group: "atoll.io", Version: "v1alpha1", Resource: "dataplanes"}
	list, err := dyn.Resource(gvr).Namespace("apps").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d Dataplane objects in namespace apps, want 1", len(list.Items))
	}
	refs := list.Items[0].GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].Name != "web-0" || refs[0].UID != pod.UID {
		t.Errorf("owner references %v, want pod web-0 (uid %s)", refs, pod.UID)
	}

	// A new pod IP updates the object.
	k.updatePod("apps", "web-0", func(p *corev1.Pod) { p.Status.PodIP = "10.1.2.4" }, true)
	dataplaneIs(t, st, resource.DefaultMesh, "apps", "web-0", "the Dataplane at the new pod IP", func(r *resource.Resource) (bool, string) {
		if r == nil {
			return false, "no Dataplane"
		}
		return networking(r).GetAddress() == "10.1.2.4", "address " + networking(r).GetAddress()
	})

	if err := client.CoreV1().Pods("apps").Delete(ctx, "web-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	dataplaneIs(t, st, resource.DefaultMesh, "apps", "web-0", "the deleted pod's Dataplane gone", absent)
}
