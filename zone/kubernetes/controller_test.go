package kubernetes_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// startController runs a controller for zone-1 writing into st until the
// test ends, and checks that Run returned without an error.
func startController(t *testing.T, client k8s.Interface, st kubernetes.Store) context.CancelFunc {
	t.Helper()
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: "zone-1",
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			stop()
		}
	})
	return stop
}

// eventually polls cond until it holds, failing the test with cond's last
// word after a generous deadline.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 30s: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dataplaneIs polls st until the Dataplane of pod ns/name satisfies check
// (nil when the store has none).
func dataplaneIs(t *testing.T, st store.Reader, mesh, ns, name, what string, check func(*resource.Resource) (bool, string)) {
	t.Helper()
	key := resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: kubernetes.DataplaneName(ns, name)}
	eventually(t, what, func() (bool, string) {
		r, err := st.Get(context.Background(), key)
		if store.IsNotFound(err) {
			r = nil
		} else if err != nil {
			return false, err.Error()
		}
		return check(r)
	})
}

func absent(r *resource.Resource) (bool, string) {
	if r != nil {
		return false, fmt.Sprintf("Dataplane %s still stored", r.Key())
	}
	return true, ""
}

func networking(r *resource.Resource) *v1alpha1.Dataplane_Networking {
	return r.Spec.(*v1alpha1.Dataplane).GetNetworking()
}

type cluster struct {
	t      *testing.T
	client k8s.Interface
}

func (c cluster) ctx() context.Context { return context.Background() }

func (c cluster) namespace(name string, mesh bool) {
	c.t.Helper()
	ns := namespace(name, nil, nil)
	if mesh {
		ns = meshNS(name)
	}
	if _, err := c.client.CoreV1().Namespaces().Create(c.ctx(), ns, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) service(svc *corev1.Service) {
	c.t.Helper()
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].Name = fmt.Sprintf("p%d", svc.Spec.Ports[i].Port) // required with several ports
	}
	if _, err := c.client.CoreV1().Services(svc.Namespace).Create(c.ctx(), svc, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// pod creates p as newPod describes it: spec first, then its status (IP,
// phase, conditions), as a kubelet would.
func (c cluster) pod(p *corev1.Pod) {
	c.t.Helper()
	status := p.Status
	p = p.DeepCopy()
	p.Status = corev1.PodStatus{}
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = "registry.example/app:1"
	}
	created, err := c.client.CoreV1().Pods(p.Namespace).Create(c.ctx(), p, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	created.Status = status
	if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(c.ctx(), created, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) updatePod(ns, name string, change func(*corev1.Pod), status bool) {
	c.t.Helper()
	pods := c.client.CoreV1().Pods(ns)
	p, err := pods.Get(c.ctx(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	change(p)
	if status {
		_, err = pods.UpdateStatus(c.ctx(), p, metav1.UpdateOptions{})
	} else {
		_, err = pods.Update(c.ctx(), p, metav1.UpdateOptions{})
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) updateService(ns, name string, change func(*corev1.Service)) {
	c.t.Helper()
	svc, err := c.client.CoreV1().Services(ns).Get(c.ctx(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	change(svc)
	if _, err := c.client.CoreV1().Services(ns).Update(c.ctx(), svc, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c cluster) events(ns, pod string) []corev1.Event {
	c.t.Helper()
	list, err := c.client.CoreV1().Events(ns).List(c.ctx(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Pod" && e.InvolvedObject.Name == pod {
			out = append(out, e)
		}
	}
	return out
}

func TestController(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)
	zoneClient, err := kubernetes.NewClientset(zoneConfig(t, env)) // the chart's RBAC rules
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	stop := startController(t, zoneClient, st)

	t.Run("delegated gateway", func(t *testing.T) {
		k := cluster{t: t, client: client}
		k.namespace("kong", true)
		k.service(service("kong", "kong-proxy", map[string]string{"app": "kong"}, tcp(80, intstr.FromInt32(8000)), tcp(443, intstr.FromInt32(8443))))
		k.pod(newPod("kong", "kong-0", map[string]string{"app": "kong"}, gateway, func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.7" }))

		dataplaneIs(t, st, resource.DefaultMesh, "kong", "kong-0", "the gateway's Dataplane", func(r *resource.Resource) (bool, string) {
			if r == nil {
				return false, "no Dataplane"
			}
			n := networking(r)
			if n.GetAddress() != "10.0.0.7" || n.GetGateway().GetType() != v1alpha1.Dataplane_Networking_Gateway_DELEGATED || len(n.GetInbound()) != 0 {
				return false, fmt.Sprintf("networking is %v", n)
			}
			if got, want := n.GetGateway().GetTags()[resource.ServiceTag], "kong-proxy_kong_svc_80"; got != want {
				return false, fmt.Sprintf("service tag %q, want %q", got, want)
			}
			if r.Meta.Labels[resource.OriginLabel] != resource.OriginZone || r.Meta.Labels[resource.NamespaceLabel] != "kong" {
				return false, fmt.Sprintf("labels %v", r.Meta.Labels)
			}
			return true, ""
		})
		eventually(t, "the service-upstream annotations", func() (bool, string) {
			svc, err := client.CoreV1().Services("kong").Get(k.ctx(), "kong-proxy", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			a := svc.Annotations
			return a[kubernetes.ServiceUpstream] == "true" && a[kubernetes.NginxServiceUpstream] == "true",
				fmt.Sprintf("annotations %v", a)
		})
		if err := client.CoreV1().Pods("kong").Delete(k.ctx(), "kong-0", *metav1.NewDeleteOptions(0)); err != nil {
			t.Fatal(err)
		}
		dataplaneIs(t, st, resource.DefaultMesh, "kong", "kong-0", "the deleted pod's Dataplane gone", absent)
	})

	t.Run("readiness", func(t *testing.T) {
		k := cluster{t: t, client: client}
		k.namespace("shop", true)
		k.service(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromString("http"))))
		k.pod(newPod("shop", "web-1", map[string]string{"app": "web"}, ready(corev1.ConditionTrue)))
		health := func(want bool) func(*resource.Resource) (bool, string) {
			return func(r *resource.Resource) (bool, string) {
				if r == nil {
					return false, "no Dataplane"
				}
				in := networking(r).GetInbound()
				if len(in) != 1 || in[0].GetPort() != 8080 || in[0].GetHealth().GetReady() != want {
					return false, fmt.Sprintf("inbounds %v, want one on 8080 ready=%v", in, want)
				}
				return true, ""
			}
		}
		dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-1", "a ready inbound", health(true))
		k.updatePod("shop", "web-1", ready(corev1.ConditionFalse), true)
		dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-1", "the inbound not ready", health(false))
		k.updatePod("shop", "web-1", ready(corev1.ConditionTrue), true)
		dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-1", "the inbound ready again", health(true))
	})

	t.Run("service selector change", func(t *testing.T) {
		k := cluster{t: t, client: client}
		k.namespace("orders", true)
		// Both Services reach pod port 8080; a-api, first by name, has it
		// while it selects the pod.
		k.service(service("orders", "a-api", map[string]string{"tier": "backend"}, tcp(80, intstr.FromInt32(8080))))
		k.service(service("orders", "b-api", map[string]string{"tier": "backend"}, tcp(81, intstr.FromInt32(8080))))
		k.pod(newPod("orders", "api-0", map[string]string{"tier": "backend"}))
		tagged := func(want string) func(*resource.Resource) (bool, string) {
			return func(r *resource.Resource) (bool, string) {
				if r == nil {
					return false, "no Dataplane"
				}
				in := networking(r).GetInbound()
				if len(in) != 1 || in[0].GetTags()[resource.ServiceTag] != want {
					return false, fmt.Sprintf("inbounds %v, want one tagged %s", in, want)
				}
				return true, ""
			}
		}
		dataplaneIs(t, st, resource.DefaultMesh, "orders", "api-0", "tagged after a-api", tagged("a-api_orders_svc_80"))
		k.updateService("orders", "a-api", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"tier": "other"} })
		dataplaneIs(t, st, resource.DefaultMesh, "orders", "api-0", "tagged after b-api", tagged("b-api_orders_svc_81"))
		k.updateService("orders", "b-api", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"tier": "other"} })
		dataplaneIs(t, st, resource.DefaultMesh, "orders", "api-0", "no Dataplane once no Service selects the pod", absent)
	})

	t.Run("bad annotation", func(t *testing.T) {
		k := cluster{t: t, client: client}
		k.namespace("edge", true)
		k.service(service("edge", "proxy", map[string]string{"app": "proxy"}, tcp(80, intstr.FromInt32(8080))))
		k.pod(newPod("edge", "proxy-0", map[string]string{"app": "proxy"}, annotated(kubernetes.GatewayAnnotation, "yes")))
		eventually(t, "an Event on the pod", func() (bool, string) {
			evs := k.events("edge", "proxy-0")
			if len(evs) != 1 {
				return false, fmt.Sprintf("%d events", len(evs))
			}
			e := evs[0]
			return e.Reason == kubernetes.ReasonInvalidAnnotation && e.Type == corev1.EventTypeWarning,
				fmt.Sprintf("event %s %s: %s", e.Type, e.Reason, e.Message)
		})
		// A change that keeps the problems reports nothing; the next
		// change of problems reports again. Had the first change been
		// reported, there would be three Events.
		k.updatePod("edge", "proxy-0", func(p *corev1.Pod) { p.Labels["version"] = "2" }, false)
		k.updatePod("edge", "proxy-0", annotated(kubernetes.GatewayAnnotation, "true"), false)
		eventually(t, "a second Event, for the new value", func() (bool, string) {
			evs := k.events("edge", "proxy-0")
			return len(evs) == 2, fmt.Sprintf("%d events", len(evs))
		})
		if evs := k.events("edge", "proxy-0"); len(evs) != 2 {
			t.Errorf("%d events, want 2: %v", len(evs), evs)
		}
		// An Event's name is cut to fit however long the pod's name is.
		long := strings.Repeat("p", 250)
		k.pod(newPod("edge", long, map[string]string{"app": "proxy"}, annotated(kubernetes.GatewayAnnotation, "yes")))
		eventually(t, "an Event on the pod with a long name", func() (bool, string) {
			evs := k.events("edge", long)
			return len(evs) == 1, fmt.Sprintf("%d events", len(evs))
		})
		key := resource.Key{Type: resource.DataplaneType, Mesh: resource.DefaultMesh, Name: kubernetes.DataplaneName("edge", "proxy-0")}
		if _, err := st.Get(k.ctx(), key); !store.IsNotFound(err) {
			t.Errorf("Get %s: %v, want not found", key, err)
		}
	})

	t.Run("restart removes stale Dataplanes", func(t *testing.T) {
		k := cluster{t: t, client: client}
		k.namespace("batch", true)
		k.service(service("batch", "worker", map[string]string{"app": "worker"}, tcp(80, intstr.FromInt32(8080))))
		k.pod(newPod("batch", "worker-0", map[string]string{"app": "worker"}))
		dataplaneIs(t, st, resource.DefaultMesh, "batch", "worker-0", "the worker's Dataplane", func(r *resource.Resource) (bool, string) {
			return r != nil, "no Dataplane"
		})
	})

	// While the zone is down, a pod goes and the store holds a Dataplane
	// no pod has: a new controller deletes both, and keeps those of live
	// pods and of other origins.
	stop()
	ctx := context.Background()
	if err := client.CoreV1().Pods("batch").Delete(ctx, "worker-0", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	stale := &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: resource.DefaultMesh,
			Name: kubernetes.DataplaneName("batch", "worker-9"),
			Labels: map[string]string{resource.OriginLabel: resource.OriginZone, resource.ZoneLabel: "zone-1",
				resource.NamespaceLabel: "batch"}},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{Address: "10.9.9.9",
			Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{Port: 8080, Tags: map[string]string{resource.ServiceTag: "worker_batch_svc_80"}}}}},
	}
	universal := stale.Clone()
	universal.Meta.Name = "vm-1"
	delete(universal.Meta.Labels, resource.NamespaceLabel)
	if err := st.Apply(ctx, []store.Op{{Put: stale}, {Put: universal}}); err != nil {
		t.Fatal(err)
	}
	startController(t, zoneClient, st)
	gone := resource.Key{Type: resource.DataplaneType, Mesh: resource.DefaultMesh, Name: kubernetes.DataplaneName("batch", "worker-0")}
	for _, key := range []resource.Key{stale.Key(), gone} {
		eventually(t, "stale "+key.String()+" deleted", func() (bool, string) {
			_, err := st.Get(ctx, key)
			return store.IsNotFound(err), fmt.Sprintf("Get: %v", err)
		})
	}
	for _, key := range []resource.Key{universal.Key(),
		{Type: resource.DataplaneType, Mesh: resource.DefaultMesh, Name: kubernetes.DataplaneName("shop", "web-1")}} {
		if _, err := st.Get(ctx, key); err != nil {
			t.Errorf("Get %s: %v, want it kept", key, err)
		}
	}
}

func TestNewControllerRefusesIncompleteConfig(t *testing.T) {
	client := &k8s.Clientset{}
	for name, cfg := range map[string]kubernetes.Config{
		"client": {Store: memstore.New(), Zone: "zone-1"},
		"store":  {Client: client, Zone: "zone-1"},
		"zone":   {Client: client, Store: memstore.New()},
	} {
		if _, err := kubernetes.NewController(cfg); err == nil {
			t.Errorf("%s missing: no error", name)
		}
	}
}
