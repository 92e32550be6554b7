package kubernetes_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// TestControllerTerms runs the controller as a replica of a zone does:
// Watch all along, Lead only in terms. A follower is ready once its caches
// are filled; a later term catches up on what changed in between (pods,
// Services, Dataplanes another replica wrote).
func TestControllerTerms(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)
	st := memstore.New()
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: "zone-1"})
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- c.Watch(watchCtx) }()
	t.Cleanup(func() {
		stopWatch()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	lead := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Lead(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Lead: %v", err)
			}
		}
	}

	k := cluster{t: t, client: client}
	k.namespace("shop", true)
	k.service(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromInt32(8080))))
	k.pod(newPod("shop", "web-0", map[string]string{"app": "web"}))

	// A follower is ready once its caches are filled, and writes nothing.
	eventually(t, "the follower ready", func() (bool, string) {
		if err := c.Ready(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	stop := lead()
	dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-0", "web-0's Dataplane in the first term", func(r *resource.Resource) (bool, string) {
		return r != nil, "no Dataplane"
	})
	stop()

	// Between terms: a pod and a Service come, and another replica's
	// write removed web-0's Dataplane.
	k.namespace("blog", true)
	k.service(service("blog", "api", map[string]string{"app": "api"}, tcp(80, intstr.FromInt32(8080))))
	k.pod(newPod("blog", "api-0", map[string]string{"app": "api"}))
	if err := st.Apply(context.Background(), []store.Op{{Delete: resource.Key{Type: resource.DataplaneType,
		Mesh: resource.DefaultMesh, Name: kubernetes.DataplaneName("shop", "web-0")}}}); err != nil {
		t.Fatal(err)
	}

	stop = lead()
	defer stop()
	for _, pod := range [][2]string{{"shop", "web-0"}, {"blog", "api-0"}} {
		dataplaneIs(t, st, resource.DefaultMesh, pod[0], pod[1], pod[1]+"'s Dataplane in the second term", func(r *resource.Resource) (bool, string) {
			return r != nil, "no Dataplane"
		})
	}
	eventually(t, "service-upstream on blog/api, created between terms", func() (bool, string) {
		svc, err := client.CoreV1().Services("blog").Get(context.Background(), "api", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return svc.Annotations[kubernetes.ServiceUpstream] == "true", fmt.Sprintf("annotations %v", svc.Annotations)
	})
	// Changes during the term are followed.
	k.pod(newPod("blog", "api-1", map[string]string{"app": "api"}))
	dataplaneIs(t, st, resource.DefaultMesh, "blog", "api-1", "api-1's Dataplane", func(r *resource.Resource) (bool, string) {
		return r != nil, "no Dataplane"
	})
}
