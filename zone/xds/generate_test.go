package xds

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func dp(name, addr string, gateway bool, inbounds ...*v1alpha1.Dataplane_Networking_Inbound) *resource.Resource {
	n := &v1alpha1.Dataplane_Networking{Address: addr, Inbound: inbounds}
	if gateway {
		n.Gateway = &v1alpha1.Dataplane_Networking_Gateway{Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
			Tags: map[string]string{resource.ServiceTag: name}}
	}
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: name,
			Labels: map[string]string{resource.OriginLabel: resource.OriginZone}},
		Spec: &v1alpha1.Dataplane{Networking: n},
	}
}

func inb(service string, port, servicePort uint32, ready bool) *v1alpha1.Dataplane_Networking_Inbound {
	return &v1alpha1.Dataplane_Networking_Inbound{Port: port, ServicePort: servicePort,
		Tags: map[string]string{resource.ServiceTag: service}, Health: &v1alpha1.Health{Ready: ready}}
}

// fixture: zone-1 runs the gateway kong, a web instance and one backend
// instance; zone-2 runs three backends (and a db) behind its ingress.
func fixture(mode v1alpha1.Mesh_CrossZone_Mode, localBackend bool) Input {
	dps := []*resource.Resource{
		dp("kong", "10.1.0.1", true),
		dp("web-1", "10.1.0.2", false, inb("web", 8080, 18080, true)),
	}
	if localBackend {
		dps = append(dps, dp("backend-1", "10.1.0.3", false, inb("backend_default_svc_9001", 9001, 0, true)),
			dp("backend-sick", "10.1.0.4", false, inb("backend_default_svc_9001", 9001, 0, false)))
	}
	zi := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-2"},
		Spec: &v1alpha1.ZoneIngress{Zone: "zone-2",
			Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.2.255.1", Port: 10002, AdvertisedAddress: "192.0.2.2", AdvertisedPort: 10002},
			AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{
				{Mesh: "default", Tags: map[string]string{resource.ServiceTag: "backend_default_svc_9001"}, Port: 9001, Instances: 3},
				{Mesh: "other", Tags: map[string]string{resource.ServiceTag: "db"}, Port: 5432, Instances: 1},
			}},
	}
	se := &resource.Resource{
		Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: "se-0000000000000001"},
		Spec: &v1alpha1.ServiceEndpoints{Zone: "zone-2", Service: "backend_default_svc_9001", Endpoints: []*v1alpha1.ServiceEndpoints_Endpoint{
			{Address: "10.2.0.2", Port: 9001}, {Address: "10.2.0.1", Port: 9001},
		}},
	}
	return Input{
		Zone: "zone-1", Domain: "mesh", MeshName: "default",
		Mesh:       &v1alpha1.Mesh{CrossZone: &v1alpha1.Mesh_CrossZone{Mode: mode}},
		Dataplanes: dps, Ingresses: []*resource.Resource{zi}, Endpoints: []*resource.Resource{se},
		VIPs: map[string]netip.Addr{
			"backend_default_svc_9001": netip.MustParseAddr("240.0.0.1"),
			"web":                      netip.MustParseAddr("240.0.0.2"),
		},
	}
}

func generate(t *testing.T, in Input, kind Kind, proxy string) Resources {
	t.Helper()
	var self *resource.Resource
	for _, d := range in.Dataplanes {
		if d.Meta.Name == proxy {
			self = d
		}
	}
	res, err := Generate(in, Proxy{Kind: kind, Dataplane: self})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, res)
	return res
}

func byName(res Resources, typ resourcev3.Type) map[string]types.Resource {
	out := map[string]types.Resource{}
	for _, r := range res[typ] {
		out[cachev3.GetResourceName(r)] = expand(r)
	}
	return out
}

type group struct {
	zone     string
	priority uint32
	weight   uint32
	eps      []string
}

func groups(cla *endpointv3.ClusterLoadAssignment) []group {
	var out []group
	for _, l := range cla.GetEndpoints() {
		g := group{zone: l.GetLocality().GetZone(), priority: l.GetPriority(), weight: l.GetLoadBalancingWeight().GetValue()}
		for _, e := range l.GetLbEndpoints() {
			a := e.GetEndpoint().GetAddress().GetSocketAddress()
			g.eps = append(g.eps, netip.AddrPortFrom(netip.MustParseAddr(a.GetAddress()), uint16(a.GetPortValue())).String())
		}
		out = append(out, g)
	}
	return out
}

func TestLocalInstancesFirstThenOtherZones(t *testing.T) {
	cases := []struct {
		name  string
		mode  v1alpha1.Mesh_CrossZone_Mode
		local bool
		want  []group
	}{
		{"ingress, local instance", v1alpha1.Mesh_CrossZone_Ingress, true, []group{
			{"zone-1", 0, 1, []string{"10.1.0.3:9001"}},
			{"zone-2", 1, 3, []string{"192.0.2.2:10002"}}, // the ingress, weighted by its 3 instances
		}},
		{"ingress, no local instance", v1alpha1.Mesh_CrossZone_Ingress, false, []group{
			{"zone-2", 0, 3, []string{"192.0.2.2:10002"}},
		}},
		{"direct, local instance", v1alpha1.Mesh_CrossZone_Direct, true, []group{
			{"zone-1", 0, 1, []string{"10.1.0.3:9001"}},
			{"zone-2", 1, 2, []string{"10.2.0.1:9001", "10.2.0.2:9001"}},
		}},
		{"direct, no local instance", v1alpha1.Mesh_CrossZone_Direct, false, []group{
			{"zone-2", 0, 2, []string{"10.2.0.1:9001", "10.2.0.2:9001"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := generate(t, fixture(c.mode, c.local), Proxyless, "kong")
			cla, ok := byName(res, resourcev3.EndpointType)["backend_default_svc_9001:9001"].(*endpointv3.ClusterLoadAssignment)
			if !ok {
				t.Fatalf("no endpoints for backend_default_svc_9001:9001: %v", byName(res, resourcev3.EndpointType))
			}
			got := groups(cla)
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i].zone != c.want[i].zone || got[i].priority != c.want[i].priority || got[i].weight != c.want[i].weight ||
					len(got[i].eps) != len(c.want[i].eps) {
					t.Fatalf("group %d: got %+v, want %+v", i, got[i], c.want[i])
				}
				for j := range got[i].eps {
					if got[i].eps[j] != c.want[i].eps[j] {
						t.Fatalf("group %d: got %+v, want %+v", i, got[i], c.want[i])
					}
				}
			}
			// Another mesh's services are not offered.
			if _, leaked := byName(res, resourcev3.ClusterType)["db:5432"]; leaked {
				t.Fatal("the db of mesh other reached a proxy of mesh default")
			}
		})
	}
}

func TestProxylessListenersNameEveryServiceName(t *testing.T) {
	res := generate(t, fixture(v1alpha1.Mesh_CrossZone_Direct, false), Proxyless, "kong")
	ls := byName(res, resourcev3.ListenerType)
	for _, name := range []string{"backend_default_svc_9001.mesh:9001", "backend.default.svc.9001.mesh:9001", "web.mesh:8080"} {
		l, ok := ls[name].(*listenerv3.Listener)
		if !ok || l.GetApiListener() == nil {
			t.Errorf("no API listener %s (have %v)", name, keys(ls))
		}
	}
	if len(ls) != 3 {
		t.Errorf("listeners %v, want the three service names", keys(ls))
	}
}

// A service that lost its DNS name to another (it has no VIP) gets no
// listener: "Backend" must not take backend.mesh from "backend".
func TestProxylessListenersOnlyForNamedServices(t *testing.T) {
	in := fixture(v1alpha1.Mesh_CrossZone_Direct, false)
	in.Dataplanes = append(in.Dataplanes, dp("impostor", "10.1.0.9", false, inb("Web", 8080, 0, true)))
	res := generate(t, in, Proxyless, "kong")
	ls := byName(res, resourcev3.ListenerType)
	l, ok := ls["web.mesh:8080"].(*listenerv3.Listener)
	if !ok {
		t.Fatalf("no listener web.mesh:8080 (have %v)", keys(ls))
	}
	if got := fmt.Sprint(l.GetApiListener()); !strings.Contains(got, ClusterName("web", 8080)) || strings.Contains(got, ClusterName("Web", 8080)) {
		t.Errorf("web.mesh:8080 routes to %s, want web's cluster only", got)
	}
	if n := len(res[resourcev3.ListenerType]); n != 3 {
		t.Errorf("%d listeners (%v), want backend's two names and web's, once each", n, keys(ls))
	}
}

func TestEnvoyGatewayHasNoInboundsAndSidecarDoes(t *testing.T) {
	in := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	gw := byName(generate(t, in, Envoy, "kong"), resourcev3.ListenerType)
	for _, want := range []string{"outbound:240.0.0.1:9001", "outbound:240.0.0.2:8080", "outbound"} {
		if _, ok := gw[want]; !ok {
			t.Errorf("gateway lacks listener %s (has %v)", want, keys(gw))
		}
	}
	if len(gw) != 3 {
		t.Errorf("gateway listeners %v: a delegated gateway has no inbound listeners", keys(gw))
	}
	side := byName(generate(t, in, Envoy, "web-1"), resourcev3.ListenerType)
	if _, ok := side["inbound:10.1.0.2:8080"]; !ok || len(side) != 4 {
		t.Errorf("sidecar listeners %v, want the outbounds and inbound:10.1.0.2:8080", keys(side))
	}
}

func keys(m map[string]types.Resource) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The generated configurations, as JSON, against testdata/*.golden.json;
// go test ./zone/xds -run Golden -update rewrites them.
func TestGolden(t *testing.T) {
	cases := []struct {
		file  string
		in    Input
		kind  Kind
		proxy string
	}{
		{"gateway-envoy-ingress", fixture(v1alpha1.Mesh_CrossZone_Ingress, true), Envoy, "kong"},
		{"sidecar-envoy-ingress", fixture(v1alpha1.Mesh_CrossZone_Ingress, true), Envoy, "web-1"},
		{"gateway-proxyless-direct", fixture(v1alpha1.Mesh_CrossZone_Direct, false), Proxyless, "kong"},
		{"gateway-envoy-service-addresses", withAddresses(v1alpha1.Mesh_CrossZone_Ingress), Envoy, "kong"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			golden(t, c.file, render(t, generate(t, c.in, c.kind, c.proxy)))
		})
	}
}

// render is Render, failing the test on error.
func render(t *testing.T, res Resources) []byte {
	t.Helper()
	b, err := Render(res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bigInput: a gateway in zone-1 seeing 1,000 services × 10 endpoints in
// zone-2 (Direct), each with a VIP.
func bigInput() Input {
	in := fixture(v1alpha1.Mesh_CrossZone_Direct, false)
	in.Endpoints, in.VIPs = nil, map[string]netip.Addr{}
	for s := range 1000 {
		svc := fmt.Sprintf("svc-%d", s)
		se := &v1alpha1.ServiceEndpoints{Zone: "zone-2", Service: svc}
		for e := range 10 {
			se.Endpoints = append(se.Endpoints, &v1alpha1.ServiceEndpoints_Endpoint{Address: fmt.Sprintf("10.2.%d.%d", s/250, e+1), Port: 8080})
		}
		in.Endpoints = append(in.Endpoints, &resource.Resource{
			Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: fmt.Sprintf("se-%d", s)}, Spec: se})
		in.VIPs[svc] = netip.AddrFrom4([4]byte{240, 0, byte(s >> 8), byte(s)})
	}
	return in
}

// BenchmarkGenerate: the whole configuration of one gateway seeing 1,000
// services × 10 endpoints, for Envoy and for proxyless gRPC.
func BenchmarkGenerate(b *testing.B) {
	in := bigInput()
	for _, c := range []struct {
		name string
		kind Kind
	}{{"envoy", Envoy}, {"proxyless", Proxyless}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Generate(in, Proxy{Kind: c.kind, Dataplane: in.Dataplanes[0]}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ingressFixture() IngressInput {
	in := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	other := dp("db-1", "10.1.0.7", false, inb("db", 5432, 0, true))
	other.Meta.Mesh = "other"
	return IngressInput{Zone: "zone-1", Address: "10.1.255.1", Port: 10001,
		Dataplanes: append(in.Dataplanes, other),
		CertPEM:    []byte("-----BEGIN CERTIFICATE-----\nfixture\n-----END CERTIFICATE-----\n"),
		KeyPEM:     []byte("-----BEGIN EC PRIVATE KEY-----\nfixture\n-----END EC PRIVATE KEY-----\n")}
}

// validate: every resource passes Envoy's own validation, and the set is
// consistent (every EDS cluster has its endpoints).
func validate(t *testing.T, res Resources) {
	t.Helper()
	for typ, rs := range res {
		for _, r := range rs {
			if err := expand(r).(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Fatalf("%s %s: %v", typ, cachev3.GetResourceName(r), err)
			}
		}
	}
	expanded := Resources{}
	for typ, rs := range res {
		for _, r := range rs {
			expanded[typ] = append(expanded[typ], expand(r))
		}
	}
	snap, err := cachev3.NewSnapshot("1", expanded)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatalf("inconsistent: %v", err)
	}
}

// The ingress routes each service port of each mesh by SNI to this zone's
// healthy instances, the SNI other zones' Envoys send.
func TestIngressRoutesBySNIToLocalInstances(t *testing.T) {
	res, err := GenerateIngress(ingressFixture())
	if err != nil {
		t.Fatal(err)
	}
	validate(t, res)
	l := res[typeLDS][0].(*listenerv3.Listener)
	chains := map[string]string{}
	for _, fc := range l.GetFilterChains() {
		chains[fc.GetFilterChainMatch().GetServerNames()[0]] = fc.GetFilters()[0].GetName()
	}
	want := []string{SNI("default", "backend_default_svc_9001", 9001), SNI("default", "web", 8080), SNI("other", "db", 5432)}
	if len(chains) != len(want) {
		t.Fatalf("filter chains for %v, want %v", chains, want)
	}
	for _, sni := range want {
		if chains[sni] == "" {
			t.Errorf("no filter chain for SNI %s (have %v)", sni, chains)
		}
	}
	cla := byName(res, typeEDS)["default/backend_default_svc_9001:9001"].(*endpointv3.ClusterLoadAssignment)
	if got := groups(cla); len(got) != 1 || len(got[0].eps) != 1 || got[0].eps[0] != "10.1.0.3:9001" {
		t.Errorf("backend behind the ingress: %+v, want only the healthy local instance", got)
	}
	// The client side names the same SNI.
	gw := generate(t, fixture(v1alpha1.Mesh_CrossZone_Ingress, false), Envoy, "kong")
	c := byName(gw, typeCDS)["backend_default_svc_9001:9001"]
	if !strings.Contains(fmt.Sprint(c), SNI("default", "backend_default_svc_9001", 9001)) {
		t.Errorf("the gateway's cluster does not send the ingress's SNI: %v", c)
	}
	if none, err := GenerateIngress(IngressInput{Zone: "zone-1", Address: "10.1.255.1", Port: 10001}); err != nil || len(none[typeLDS]) != 0 {
		t.Errorf("an ingress with nothing to offer: %v %v", none, err)
	}
}

func TestIngressGolden(t *testing.T) {
	res, err := GenerateIngress(ingressFixture())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "ingress", render(t, res))
}

// golden compares got with testdata/<file>.golden.json (-update writes it).
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generated configuration (run with -update after checking the change):\n%s", path, got)
	}
}
