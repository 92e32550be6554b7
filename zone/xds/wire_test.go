package xds

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/google/go-cmp/cmp"
)

// messageLoadAssignment builds what loadAssignment encodes, from messages.
func messageLoadAssignment(name, zone string, sp *servicePort) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	loc := func(zone string, priority uint32, ws []weighted) *endpointv3.LocalityLbEndpoints {
		l := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: zone}, Priority: priority}
		total := uint32(0)
		for _, w := range ws {
			total += w.weight
			e := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(w.addr, w.port)}}}
			if w.weight != 1 {
				e.LoadBalancingWeight = wrapperspb.UInt32(w.weight)
			}
			if w.ingress {
				e.Metadata = ingressMetadata
			}
			l.LbEndpoints = append(l.LbEndpoints, e)
		}
		l.LoadBalancingWeight = wrapperspb.UInt32(total)
		return l
	}
	remotePriority := uint32(0)
	if len(sp.local) > 0 {
		cla.Endpoints = append(cla.Endpoints, loc(zone, 0, sp.local))
		remotePriority = 1
	}
	for _, g := range sp.remote {
		cla.Endpoints = append(cla.Endpoints, loc(g.zone, remotePriority, g.endpoints))
	}
	return cla
}

// The endpoints written in wire form decode to the messages they stand
// for, for random service ports: lengths that need one to three bytes of
// prefix, weights of 0, 1 and more, ingress metadata, ports 0 and large.
func TestWireLoadAssignmentMatchesMessages(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	ws := func(n int) []weighted {
		out := make([]weighted, n)
		for i := range out {
			out[i] = weighted{addr: fmt.Sprintf("10.%d.%d.%d", rnd.IntN(256), rnd.IntN(256), rnd.IntN(256)),
				port: []uint32{0, 80, 9001, 65535}[rnd.IntN(4)], weight: []uint32{0, 1, 3, 300, 1 << 20}[rnd.IntN(5)],
				ingress: rnd.IntN(2) == 0}
		}
		return out
	}
	for i := range 300 {
		sp := &servicePort{service: "svc", port: 9001}
		if i%3 != 0 {
			sp.local = ws(rnd.IntN(600))
		}
		for z := range rnd.IntN(4) {
			sp.remote = append(sp.remote, endpointGroup{zone: fmt.Sprintf("zone-%d", z+2), endpoints: ws(rnd.IntN(40))})
		}
		got := loadAssignment("svc:9001", "zone-1", sp)
		want := messageLoadAssignment("svc:9001", "zone-1", sp)
		if diff := cmp.Diff(want, expand(got), protocmp.Transform()); diff != "" {
			t.Fatalf("case %d: wire form differs from the messages (-want +got):\n%s", i, diff)
		}
		// What a proxy receives decodes alike.
		b, err := proto.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back endpointv3.ClusterLoadAssignment
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&back, want) {
			t.Fatalf("case %d: marshalled form differs", i)
		}
	}
	if cla := loadAssignment("none:1", "zone-1", &servicePort{}); len(cla.ProtoReflect().GetUnknown()) != 0 || !proto.Equal(expand(cla), &endpointv3.ClusterLoadAssignment{ClusterName: "none:1"}) {
		t.Errorf("a cluster without endpoints: %v", cla)
	}
}

// The filter configurations written in wire form decode to the messages
// they stand for.
func TestWireFilterConfigsMatchMessages(t *testing.T) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"backend.mesh:9001", strings.Repeat("long-service-name.", 10) + "mesh:1", ""} {
		cluster := "cluster-of-" + name
		cases := []struct {
			what string
			got  *anypb.Any
			want proto.Message
		}{
			{"tcp proxy", tcpProxyWire("stats-"+name, cluster),
				&tcpproxyv3.TcpProxy{StatPrefix: "stats-" + name, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}}},
			{"upstream TLS", upstreamTLSWire(name), &tlsv3.UpstreamTlsContext{Sni: name}},
			{"HTTP connection manager", hcmWire(name, cluster), &hcmv3.HttpConnectionManager{
				StatPrefix: name,
				RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
					Name: name,
					VirtualHosts: []*routev3.VirtualHost{{
						Name:    name,
						Domains: []string{"*"},
						Routes: []*routev3.Route{{
							Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: ""}},
							Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
						}},
					}},
				}},
				HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
			}},
		}
		for _, c := range cases {
			got, err := c.got.UnmarshalNew()
			if err != nil {
				t.Fatalf("%s %q: %v", c.what, name, err)
			}
			if diff := cmp.Diff(c.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("%s %q: wire form differs (-want +got):\n%s", c.what, name, diff)
			}
			if err := got.(interface{ ValidateAll() error }).ValidateAll(); err != nil && name != "" {
				t.Errorf("%s %q: %v", c.what, name, err)
			}
		}
	}
}

// An outbound listener written in wire form decodes to the listener it
// stands for.
func TestWireOutboundListenerMatchesMessages(t *testing.T) {
	for _, c := range []struct {
		vip  string
		port uint32
	}{{"240.0.0.1", 9001}, {"240.255.1.2", 1}, {"fd00::1", 65535}} {
		vip := netip.MustParseAddr(c.vip)
		cluster := "backend:" + fmt.Sprint(c.port)
		name := "outbound:" + netip.AddrPortFrom(vip, uint16(c.port)).String()
		want := &listenerv3.Listener{
			Name:         name,
			Address:      socketAddress(vip.String(), c.port),
			BindToPort:   wrapperspb.Bool(false),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxy(name, cluster)}}},
		}
		got := expand(outboundListener(name, netip.AddrPortFrom(vip, uint16(c.port)), cluster))
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("%s: wire form differs (-want +got):\n%s", name, diff)
		}
		if err := got.(*listenerv3.Listener).ValidateAll(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// BenchmarkEndpointEncoding: the 1,000 load assignments of a gateway
// seeing 1,000 services × 10 endpoints, built and marshalled (as a proxy
// gets them) in wire form and, as the baseline in the same run, from
// messages; the two alternate in every iteration.
func BenchmarkEndpointEncoding(b *testing.B) {
	sps := model(bigInput())
	var wire, messages time.Duration
	run := func(build func(name, zone string, sp *servicePort) *endpointv3.ClusterLoadAssignment) time.Duration {
		start := time.Now()
		for _, sp := range sps {
			if _, err := proto.Marshal(build(ClusterName(sp.service, sp.port), "zone-1", sp)); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	for b.Loop() {
		wire += run(loadAssignment)
		messages += run(messageLoadAssignment)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(wire), "ms-wire")
	b.ReportMetric(ms(messages), "ms-messages")
	b.ReportMetric(float64(messages)/float64(wire), "x-wire-speedup")
}
