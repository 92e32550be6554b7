package kubernetes_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// On a real API server: the ClusterIP the API server gives a mesh Service
// reaches the controller's view and, through the zone's xDS server, the
// gateway's Envoy as an outbound listener routed to the Service's
// cluster; changing the Service moves it, opting the Service out or
// deleting it removes it.
func TestClusterIPListenersReachTheGateway(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st := memstore.New()
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: "zone-1", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := runWithXDS(t, ctx, cancel, c, st, xds.Config{ServiceAddresses: c.ServiceAddresses, Log: log},
		func(srv *xds.Server) { c.OnServiceAddresses(srv.Changed) })

	k := cluster{t: t, client: client}
	k.namespace("kong", true)
	k.service(service("kong", "kong-proxy", map[string]string{"app": "kong"}, tcp(80, intstr.FromInt32(8000))))
	k.pod(newPod("kong", "kong-0", map[string]string{"app": "kong"}, gateway, func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.7" }))
	k.namespace("shop", true)
	k.service(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromString("http"))))
	k.pod(newPod("shop", "web-1", map[string]string{"app": "web"}, func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.8" }))
	// The controller patches the Services (service-upstream): let it,
	// before the test updates them.
	eventually(t, "web's service-upstream annotations", func() (bool, string) {
		svc, err := client.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return svc.Annotations[kubernetes.ServiceUpstream] == "true", fmt.Sprintf("annotations %v", svc.Annotations)
	})
	web, err := client.CoreV1().Services("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(web.Spec.ClusterIP)
	if !netip.MustParsePrefix(kubeenv.ServiceCIDR).Contains(ip) {
		t.Fatalf("the API server gave web ClusterIP %s, outside %s", ip, kubeenv.ServiceCIDR)
	}

	eventually(t, "the controller's view of web's ClusterIP", func() (bool, string) {
		got := c.ServiceAddresses(resource.DefaultMesh)["web_shop_svc_80"]
		return slices.Equal(got, []netip.AddrPort{netip.AddrPortFrom(ip, 80)}), fmt.Sprintf("web_shop_svc_80: %v", got)
	})
	dataplaneIs(t, st, resource.DefaultMesh, "kong", "kong-0", "the gateway's Dataplane", func(r *resource.Resource) (bool, string) {
		return r != nil && networking(r).GetGateway().GetType() == v1alpha1.Dataplane_Networking_Gateway_DELEGATED, fmt.Sprintf("Dataplane %v", r)
	})

	lds := gatewayListeners(t, srv.Addr().String(), resource.DefaultMesh+"."+kubernetes.DataplaneName("kong", "kong-0"))
	listener := func(port uint16) string { return xds.AddressListener(netip.AddrPortFrom(ip, port)) }
	lds.until(t, "the listener on web's ClusterIP:80", func(ls map[string]string) (bool, string) {
		got, want := ls[listener(80)], netip.AddrPortFrom(ip, 80).String()+" → "+xds.ClusterName("web_shop_svc_80", 80)
		return got == want, fmt.Sprintf("%s is %q, want %q", listener(80), got, want)
	})

	// The Service's port changes: the service name with it, and the
	// listener moves to the new port.
	k.updateService("shop", "web", func(s *corev1.Service) { s.Spec.Ports[0].Port = 8081 })
	lds.until(t, "the listener on web's ClusterIP:8081", func(ls map[string]string) (bool, string) {
		got, want := ls[listener(8081)], netip.AddrPortFrom(ip, 8081).String()+" → "+xds.ClusterName("web_shop_svc_8081", 8081)
		_, old := ls[listener(80)]
		return got == want && !old, fmt.Sprintf("%s is %q, want %q; the one on port 80 still there: %v", listener(8081), got, want, old)
	})

	// Opted out of service-upstream: web's pods keep their inbounds (the
	// cluster stays) but the gateway no longer takes its ClusterIP.
	k.updateService("shop", "web", func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[kubernetes.IgnoreAnnotation] = "true"
	})
	lds.until(t, "no listener on an ignored Service's ClusterIP", func(ls map[string]string) (bool, string) {
		_, has := ls[listener(8081)]
		return !has, fmt.Sprintf("listeners %v", ls)
	})
	dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-1", "web-1 still serving web", func(r *resource.Resource) (bool, string) {
		in := networking(r).GetInbound()
		return len(in) == 1 && in[0].GetTags()[resource.ServiceTag] == "web_shop_svc_8081", fmt.Sprintf("inbounds %v", in)
	})

	k.updateService("shop", "web", func(s *corev1.Service) { delete(s.Annotations, kubernetes.IgnoreAnnotation) })
	lds.until(t, "the listener back", func(ls map[string]string) (bool, string) {
		_, has := ls[listener(8081)]
		return has, fmt.Sprintf("listeners %v", ls)
	})
	if err := client.CoreV1().Services("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	lds.until(t, "no listener once the Service is deleted", func(ls map[string]string) (bool, string) {
		_, has := ls[listener(8081)]
		return !has, fmt.Sprintf("listeners %v", ls)
	})
	if got := c.ServiceAddresses(resource.DefaultMesh)["web_shop_svc_8081"]; got != nil {
		t.Errorf("the controller still has addresses for the deleted Service: %v", got)
	}
}

// ldsStream is an Envoy's ADS stream (state of the world) for listeners.
type ldsStream struct {
	s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
}

// gatewayListeners connects to the xDS server at addr as node and asks
// for listeners.
func gatewayListeners(t *testing.T, addr, node string) *ldsStream {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "envoy"}, TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	return &ldsStream{s: s}
}

// until reads (and ACKs) listener responses until the listeners, by name
// → "address → cluster", satisfy ok; it fails with ok's last word when the
// stream ends (the server keeps it open, so only by its 1-minute bound).
func (l *ldsStream) until(t *testing.T, what string, ok func(map[string]string) (bool, string)) {
	t.Helper()
	why := "no response"
	for {
		resp, err := l.s.Recv()
		if err != nil {
			t.Fatalf("%s: the stream ended (%v): %s", what, err, why)
		}
		if err := l.s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resourcev3.ListenerType,
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		ls := map[string]string{}
		for _, a := range resp.GetResources() {
			var lis listenerv3.Listener
			if err := a.UnmarshalTo(&lis); err != nil {
				t.Fatal(err)
			}
			sa := lis.GetAddress().GetSocketAddress()
			route := netip.AddrPortFrom(netip.MustParseAddr(sa.GetAddress()), uint16(sa.GetPortValue())).String() + " →"
			for _, fc := range lis.GetFilterChains() {
				for _, f := range fc.GetFilters() {
					var tp tcpproxyv3.TcpProxy
					if f.GetTypedConfig().UnmarshalTo(&tp) == nil {
						route += " " + tp.GetCluster()
					}
				}
			}
			ls[lis.GetName()] = route
		}
		var done bool
		if done, why = ok(ls); done {
			return
		}
	}
}

// runWithXDS runs the controller c and a zone-1 xDS server over st (cfg
// completed with its address, zone, domain, cache and store; before, when
// set, sees the server first) until the test ends; cancel ends ctx.
func runWithXDS(t *testing.T, ctx context.Context, cancel context.CancelFunc, c *kubernetes.Controller, st store.Store,
	cfg xds.Config, before func(*xds.Server)) *xds.Server {
	t.Helper()
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.ServiceEndpointsType)
	cfg.Addr, cfg.Zone, cfg.Domain, cfg.Cache, cfg.Store = "127.0.0.1:0", "zone-1", "mesh", cache, st
	srv := xds.NewServer(cfg)
	if before != nil {
		before(srv)
	}
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return srv
}
