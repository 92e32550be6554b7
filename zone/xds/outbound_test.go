package xds

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

func addrs(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddrPort(a)
	}
	return out
}

// withAddresses is fixture with Services' own addresses: backend's
// ClusterIPs (IPv4 and IPv6), web's, and addresses that get no listener:
// those of a service without instances, a wildcard, and one on web's
// VIP listener.
func withAddresses(mode v1alpha1.Mesh_CrossZone_Mode) Input {
	in := fixture(mode, true)
	in.ServiceAddresses = map[string][]netip.AddrPort{
		"backend_default_svc_9001": addrs("10.96.0.10:9001", "[fd00:10:96::a]:9001", "240.0.0.2:8080"),
		"web":                      addrs("10.96.0.11:80"),
		"ghost_default_svc_80":     addrs("10.96.0.12:80"),
		"wild":                     addrs("0.0.0.0:80"),
	}
	return in
}

// routes maps each listener of a configuration to where it listens and
// the cluster its TCP proxy sends to.
func routes(t *testing.T, res Resources) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, r := range byName(res, resourcev3.ListenerType) {
		l := r.(*listenerv3.Listener)
		out[name] = listenerRoute(t, l)
	}
	return out
}

func listenerRoute(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	sa := l.GetAddress().GetSocketAddress()
	var cluster string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var tp tcpproxyv3.TcpProxy
			if err := f.GetTypedConfig().UnmarshalTo(&tp); err != nil {
				t.Fatalf("listener %s: %v", l.GetName(), err)
			}
			cluster = tp.GetCluster()
		}
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr(sa.GetAddress()), uint16(sa.GetPortValue()))
	bind := "bound"
	if l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() {
		bind = "unbound"
	}
	return ap.String() + " " + bind + " → " + cluster
}

// A Service's ClusterIPs, IPv4 and IPv6, get outbound listeners routed to
// the service's cluster, beside its VIP's; Envoy proxies have them,
// gRPC clients (which call names) do not.
func TestServiceAddressListeners(t *testing.T) {
	in := withAddresses(v1alpha1.Mesh_CrossZone_Ingress)
	want := map[string]string{
		"outbound:240.0.0.1:9001":          "240.0.0.1:9001 unbound → backend_default_svc_9001:9001",
		"outbound:240.0.0.2:8080":          "240.0.0.2:8080 unbound → web:8080",
		"outbound-ip:10.96.0.10:9001":      "10.96.0.10:9001 unbound → backend_default_svc_9001:9001",
		"outbound-ip:[fd00:10:96::a]:9001": "[fd00:10:96::a]:9001 unbound → backend_default_svc_9001:9001",
		"outbound-ip:10.96.0.11:80":        "10.96.0.11:80 unbound → web:8080",
		"outbound":                         "0.0.0.0:15001 bound → " + PassthroughCluster,
	}
	for _, proxy := range []string{"kong", "web-1"} {
		got := routes(t, generate(t, in, Envoy, proxy))
		for name, route := range want {
			if got[name] != route {
				t.Errorf("%s: listener %s is %q, want %q", proxy, name, got[name], route)
			}
		}
		n := len(got)
		if proxy == "web-1" {
			n-- // its inbound
		}
		if n != 6 {
			t.Errorf("%s: listeners %v, want exactly the six outbound ones (none for a service without instances, a wildcard, or an address on a VIP listener)", proxy, got)
		}
	}
	for name := range byName(generate(t, in, Proxyless, "kong"), resourcev3.ListenerType) {
		if strings.HasPrefix(name, "outbound") {
			t.Errorf("a gRPC client got %s", name)
		}
	}
}

// Of a service served on two ports (instances mid-way through a port
// change), its addresses go to the cluster with the lower port, whatever
// the order of the Dataplanes.
func TestServiceAddressesTakeTheLowestPort(t *testing.T) {
	in := withAddresses(v1alpha1.Mesh_CrossZone_Ingress)
	in.Dataplanes = append(in.Dataplanes, dp("web-2", "10.1.0.5", false, inb("web", 7070, 0, true)))
	slices.Reverse(in.Dataplanes)
	got := routes(t, generate(t, in, Envoy, "kong"))
	if r := got["outbound-ip:10.96.0.11:80"]; r != "10.96.0.11:80 unbound → web:7070" {
		t.Errorf("web's ClusterIP listener: %q, want it routed to web:7070", r)
	}
	m := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
	m.update(in)
	m.serve(Envoy, in.VIPs, in.ServiceAddresses)
	if r := listenerRoute(t, expand(m.gateway.GetResources()["outbound-ip:10.96.0.11:80"]).(*listenerv3.Listener)); r != got["outbound-ip:10.96.0.11:80"] {
		t.Errorf("incremental: %q, full build: %q", r, got["outbound-ip:10.96.0.11:80"])
	}
}

// The incremental configuration follows the addresses: added, moved and
// removed with them, and with the clusters they route to.
func TestServiceAddressListenersFollowChanges(t *testing.T) {
	m := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
	in := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	versioned(in.Dataplanes, "1")
	versioned(in.Ingresses, "1")
	m.update(in)
	m.serve(Envoy, in.VIPs, in.ServiceAddresses)
	step := func(what string, want ...string) {
		t.Helper()
		m.update(in)
		var got []string
		for name, l := range m.gateway.GetResources() {
			if strings.HasPrefix(name, "outbound-ip:") {
				got = append(got, listenerRoute(t, expand(l).(*listenerv3.Listener)))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: address listeners %q, want %q", what, got, want)
		}
		full := generate(t, in, Envoy, "kong")
		sameResources(t, what+": listeners", m.gateway.GetResources(), full[resourcev3.ListenerType], func(string) bool { return false })
	}
	step("no addresses")
	in.ServiceAddresses = map[string][]netip.AddrPort{"web": addrs("10.96.0.11:80", "[fd00:10:96::b]:80")}
	step("web's ClusterIPs", "10.96.0.11:80 unbound → web:8080", "[fd00:10:96::b]:80 unbound → web:8080")
	in.ServiceAddresses = map[string][]netip.AddrPort{"web": addrs("10.96.0.21:80")}
	step("web's ClusterIP changed", "10.96.0.21:80 unbound → web:8080")
	in.ServiceAddresses = map[string][]netip.AddrPort{"web": addrs("10.96.0.21:80"), "backend_default_svc_9001": addrs("10.96.0.10:9001")}
	step("backend's added", "10.96.0.21:80 unbound → web:8080", "10.96.0.10:9001 unbound → backend_default_svc_9001:9001")
	in.Dataplanes = slices.DeleteFunc(in.Dataplanes, func(r *resource.Resource) bool { return r.Meta.Name == "web-1" })
	step("web's instance gone", "10.96.0.10:9001 unbound → backend_default_svc_9001:9001")
	in.ServiceAddresses = nil
	step("the Services gone")
}

// A running server pushes the listeners on services' addresses to a
// connected gateway when it is told they changed.
func TestServerPushesServiceAddressListeners(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := memstore.New()
	for _, r := range []*resource.Resource{
		{Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{}},
		dp("kong", "10.1.0.1", true),
		dp("web-1", "10.1.0.2", false, inb("web_shop_svc_80", 8080, 0, true)),
	} {
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var current atomic.Pointer[map[string][]netip.AddrPort]
	current.Store(&map[string][]netip.AddrPort{"web_shop_svc_80": addrs("10.96.0.11:80")})
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.ServiceEndpointsType)
	s := NewServer(Config{Addr: "127.0.0.1:0", Zone: "zone-1", Domain: "mesh", Cache: cache, Store: st, Log: slogDiscard(),
		ServiceAddresses: func(mesh string) map[string][]netip.AddrPort {
			if mesh != "default" {
				t.Errorf("asked for the addresses of mesh %q", mesh)
			}
			return *current.Load()
		}})
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	for s.Addr() == nil {
		time.Sleep(time.Millisecond)
	}
	lds := watchListeners(t, s, "default.kong")
	lds.until(t, "web's ClusterIP listener", func(ls map[string]string) bool {
		return ls["outbound-ip:10.96.0.11:80"] == "10.96.0.11:80 unbound → web_shop_svc_80:80"
	})
	current.Store(&map[string][]netip.AddrPort{"web_shop_svc_80": addrs("10.96.0.12:80")})
	s.Changed()
	lds.until(t, "the listener moved to the new ClusterIP", func(ls map[string]string) bool {
		_, old := ls["outbound-ip:10.96.0.11:80"]
		return !old && ls["outbound-ip:10.96.0.12:80"] == "10.96.0.12:80 unbound → web_shop_svc_80:80"
	})
	current.Store(&map[string][]netip.AddrPort{})
	s.Changed()
	lds.until(t, "no address listener once the Service is gone", func(ls map[string]string) bool {
		for name := range ls {
			if strings.HasPrefix(name, "outbound-ip:") {
				return false
			}
		}
		return ls["outbound"] != ""
	})
}

// ldsWatch is an Envoy's ADS stream (state of the world) subscribed to
// listeners; it ACKs every response.
type ldsWatch struct {
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
}

func watchListeners(t *testing.T, s *Server, node string) *ldsWatch {
	t.Helper()
	stream := adsStream(t, s, 30*time.Second)
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "envoy"}, TypeUrl: typeLDS}); err != nil {
		t.Fatal(err)
	}
	return &ldsWatch{stream: stream}
}

// until reads responses until the listeners (name → listenerRoute)
// satisfy ok.
func (w *ldsWatch) until(t *testing.T, what string, ok func(map[string]string) bool) {
	t.Helper()
	var last map[string]string
	for {
		resp, err := w.stream.Recv()
		if err != nil {
			t.Fatalf("%s: the stream ended: %v; last listeners %v", what, err, last)
		}
		if err := w.stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeLDS, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		last = map[string]string{}
		var rs []types.Resource
		for _, a := range resp.GetResources() {
			var l listenerv3.Listener
			if err := a.UnmarshalTo(&l); err != nil {
				t.Fatal(err)
			}
			rs = append(rs, &l)
		}
		for _, r := range rs {
			last[cachev3.GetResourceName(r)] = listenerRoute(t, r.(*listenerv3.Listener))
		}
		if ok(last) {
			return
		}
	}
}
