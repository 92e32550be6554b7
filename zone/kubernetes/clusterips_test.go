package kubernetes_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
