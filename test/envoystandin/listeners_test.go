package main

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func listenerAt(t *testing.T, name, addr string, port uint32, bind, originalDst bool, cluster string) *discoveryv3.Resource {
	t.Helper()
	tp, err := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
		UseOriginalDst: wrapperspb.Bool(originalDst),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tp}}}}},
	}
	if !bind {
		l.BindToPort = wrapperspb.Bool(false)
	}
	a, err := anypb.New(l)
	if err != nil {
		t.Fatal(err)
	}
	return &discoveryv3.Resource{Name: name, Resource: a}
}

// The stand-in binds the listener with use_original_dst (only it), and
// hands a connection to the listener of its original destination, with
// that listener's cluster, as Envoy does; one to no listener's address
// stays with the outbound listener.
func TestListenersBindAndHandOver(t *testing.T) {
	ls := newListeners()
	defer func() {
		for _, b := range ls.bound {
			b.Close()
		}
	}()
	ls.apply(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: resourcev3.ListenerType, Resources: []*discoveryv3.Resource{
		listenerAt(t, "outbound", "127.0.0.1", 0, true, true, "outbound:passthrough"),
		listenerAt(t, "outbound:240.0.0.1:9001", "240.0.0.1", 9001, false, false, "backend"),
	}})
	if len(ls.bound) != 1 || ls.bound["outbound"] == nil {
		t.Fatalf("bound %v, want the outbound listener alone", ls.bound)
	}
	if to, cluster := ls.handTo("outbound", netip.MustParseAddrPort("240.0.0.1:9001")); to != "outbound:240.0.0.1:9001" || cluster != "backend" {
		t.Errorf("a connection to the VIP goes to %s (cluster %s), want outbound:240.0.0.1:9001 (backend)", to, cluster)
	}
	if to, cluster := ls.handTo("outbound", netip.MustParseAddrPort("192.0.2.1:443")); to != "outbound" || cluster != "outbound:passthrough" {
		t.Errorf("a connection elsewhere goes to %s (cluster %s), want outbound (outbound:passthrough)", to, cluster)
	}
	// Removed: its socket is closed and it is no longer a destination.
	ls.apply(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: resourcev3.ListenerType, RemovedResources: []string{"outbound:240.0.0.1:9001", "outbound"}})
	if len(ls.bound) != 0 || len(ls.held) != 0 {
		t.Errorf("after removal bound %v held %v, want none", ls.bound, ls.held)
	}
}
