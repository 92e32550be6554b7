package kubernetes_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// withIPs gives svc the cluster IPs the API server would assign.
func withIPs(svc *corev1.Service, ips ...string) *corev1.Service {
	svc.Spec.ClusterIPs = ips
	if len(ips) > 0 {
		svc.Spec.ClusterIP = ips[0]
	}
	return svc
}

func annotatedService(svc *corev1.Service, k, v string) *corev1.Service {
	svc.Annotations = map[string]string{k: v}
	return svc
}

// renderAddresses is a MeshAddresses as "mesh/service=addr,addr" lines, sorted.
func renderAddresses(m kubernetes.MeshAddresses) []string {
	var out []string
	for mesh, services := range m {
		for svc, addrs := range services {
			line := mesh + "/" + svc + "="
			for i, a := range addrs {
				if i > 0 {
					line += ","
				}
				line += a.String()
			}
			out = append(out, line)
		}
	}
	slices.Sort(out)
	return out
}

func TestServiceAddressesFor(t *testing.T) {
	sel := map[string]string{"app": "web"}
	payments := namespace("payments", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled},
		map[string]string{kubernetes.MeshAnnotation: "finance"})
	bad := namespace("bad", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled},
		map[string]string{kubernetes.MeshAnnotation: "Not_A_Mesh"})
	namespaces := []*corev1.Namespace{meshNS("shop"), payments, bad, namespace("plain", nil, nil)}
	cases := []struct {
		name string
		svc  *corev1.Service
		want []string
	}{
		{"one port", withIPs(service("shop", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"),
			[]string{"default/web_shop_svc_80=10.96.0.10:80"}},
		{"ports and dual stack, primary first", withIPs(service("shop", "web", sel,
			tcp(80, intstr.FromInt32(8080)), tcp(443, intstr.FromString("https"))), "fd00:10:96::a", "10.96.0.10"),
			[]string{"default/web_shop_svc_443=[fd00:10:96::a]:443,10.96.0.10:443", "default/web_shop_svc_80=[fd00:10:96::a]:80,10.96.0.10:80"}},
		{"clusterIP only (no clusterIPs)", func() *corev1.Service {
			s := service("shop", "web", sel, tcp(80, intstr.FromInt32(8080)))
			s.Spec.ClusterIP = "10.96.0.10"
			return s
		}(), []string{"default/web_shop_svc_80=10.96.0.10:80"}},
		{"UDP and SCTP ports have none", withIPs(service("shop", "dns", sel, port{port: 53, proto: corev1.ProtocolUDP},
			port{port: 9, proto: corev1.ProtocolSCTP}, tcp(53, intstr.FromInt32(53))), "10.96.0.53"),
			[]string{"default/dns_shop_svc_53=10.96.0.53:53"}},
		{"the namespace's mesh", withIPs(service("payments", "api", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.20"),
			[]string{"finance/api_payments_svc_80=10.96.0.20:80"}},
		{"headless", headlessService(withIPs(service("shop", "web", sel, tcp(80, intstr.FromInt32(8080))), "None")), nil},
		{"ExternalName", func() *corev1.Service {
			s := service("shop", "ext", nil, tcp(80, intstr.FromInt32(80)))
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "backend.mesh"
			return s
		}(), nil},
		{"ignored", annotatedService(withIPs(service("shop", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"),
			kubernetes.IgnoreAnnotation, "true"), nil},
		{"ignore with another value counts for nothing", annotatedService(withIPs(service("shop", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"),
			kubernetes.IgnoreAnnotation, "false"), []string{"default/web_shop_svc_80=10.96.0.10:80"}},
		{"namespace not in the mesh", withIPs(service("plain", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"), nil},
		{"namespace unknown", withIPs(service("gone", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"), nil},
		{"namespace naming an invalid mesh", withIPs(service("bad", "web", sel, tcp(80, intstr.FromInt32(8080))), "10.96.0.10"), nil},
		{"not yet assigned", service("shop", "web", sel, tcp(80, intstr.FromInt32(8080))), nil},
		{"a selector is not needed", withIPs(service("shop", "manual", nil, tcp(80, intstr.FromInt32(8080))), "10.96.0.30"),
			[]string{"default/manual_shop_svc_80=10.96.0.30:80"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := renderAddresses(kubernetes.ServiceAddressesFor(namespaces, []*corev1.Service{c.svc}))
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// The service names are those of the inbounds the Services' pods get, so
// the gateway's listener on a ClusterIP finds their cluster.
func TestServiceAddressesNameTheInboundsService(t *testing.T) {
	svc := withIPs(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromString("http"))), "10.96.0.10")
	ns := meshNS("shop")
	dp, problems := kubernetes.DataplaneFor(kubernetes.Input{Zone: "zone-1", Namespace: ns,
		Pod: newPod("shop", "web-1", map[string]string{"app": "web"}), Services: []*corev1.Service{svc}})
	if dp == nil {
		t.Fatalf("no Dataplane: %v", problems)
	}
	addrs := kubernetes.ServiceAddressesFor([]*corev1.Namespace{ns}, []*corev1.Service{svc})[dp.Meta.Mesh]
	for _, in := range networking(dp).GetInbound() {
		name := in.GetTags()["atoll.io/service"]
		if got := addrs[name]; !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("10.96.0.10:80")}) {
			t.Errorf("addresses of %s: %v (have %v)", name, got, fmt.Sprint(addrs))
		}
	}
}

// The controller's view follows Services and Namespaces, dual-stack
// ClusterIPs included (the test API server is IPv4 only: this runs on a
// fake clientset), and tells its listeners of each change.
func TestControllerServiceAddresses(t *testing.T) {
	web := withIPs(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromInt32(8080))), "10.96.0.10", "fd00:10:96::a")
	client := fake.NewClientset(meshNS("shop"), web)
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: memstore.New(), Zone: "zone-1"})
	if err != nil {
		t.Fatal(err)
	}
	told := make(chan struct{}, 16)
	c.OnServiceAddresses(func() { told <- struct{}{} })
	if got := c.ServiceAddresses(resource.DefaultMesh); len(got) != 0 {
		t.Errorf("addresses before Run: %v, want none", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// next waits for a change to be told, then checks the view.
	next := func(what string, want ...string) {
		t.Helper()
		select {
		case <-told:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: not told within 30s", what)
		}
		if got := renderAddresses(kubernetes.MeshAddresses{resource.DefaultMesh: c.ServiceAddresses(resource.DefaultMesh)}); !slices.Equal(got, want) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
	next("both ClusterIPs", "default/web_shop_svc_80=10.96.0.10:80,[fd00:10:96::a]:80")

	services := client.CoreV1().Services("shop")
	web.Spec.ClusterIPs = []string{"fd00:10:96::a"}
	web.Spec.ClusterIP = "fd00:10:96::a"
	if _, err := services.Update(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next("IPv6 only", "default/web_shop_svc_80=[fd00:10:96::a]:80")

	ns := meshNS("shop")
	ns.Annotations = map[string]string{kubernetes.MeshAnnotation: "payments"}
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next("moved to mesh payments")
	if got := c.ServiceAddresses("payments")["web_shop_svc_80"]; len(got) != 1 || got[0].String() != "[fd00:10:96::a]:80" {
		t.Errorf("mesh payments: %v, want web's IPv6 ClusterIP", got)
	}

	ns.Labels = nil
	if _, err := client.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next("namespace out of the mesh")
	if got := c.ServiceAddresses("payments"); len(got) != 0 {
		t.Errorf("mesh payments after the namespace left: %v, want none", got)
	}
}
