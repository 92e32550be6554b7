package xds

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// pushTopology is a zone's xDS server over a memory store holding a mesh
// (Direct) with 1,000 services × 10 endpoints in zone-2, and `proxies`
// gateway Dataplanes.
func pushTopology(tb testing.TB, proxies int) (*Server, store.Store, *resource.Resource) {
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	st := memstore.New()
	must := func(_ *resource.Resource, err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: "default"},
		Spec: &v1alpha1.Mesh{CrossZone: &v1alpha1.Mesh_CrossZone{Mode: v1alpha1.Mesh_CrossZone_Direct}}}))
	var changed *resource.Resource
	for _, r := range bigInput().Endpoints {
		r.Meta.Version = ""
		stored, err := st.Create(ctx, r)
		must(stored, err)
		if r.Meta.Name == "se-500" {
			changed = stored
		}
	}
	for i := range proxies {
		gw := dp(fmt.Sprintf("gw-%d", i), "10.1.0.1", true)
		gw.Meta.Version = ""
		must(st.Create(ctx, gw))
	}
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.ServiceEndpointsType)
	s := NewServer(Config{Addr: "127.0.0.1:0", Zone: "zone-1", Domain: "mesh", Cache: cache, Store: st, Log: slogDiscard()})
	if err := cache.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	go s.Run(ctx)
	for deadline := time.Now().Add(10 * time.Second); s.Addr() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("the xDS server did not listen within 10s")
		}
	}
	return s, st, changed
}

// edsClient is one proxy's ADS stream subscribed to endpoints; it ACKs
// every response at once, as proxies do, and reports the address of
// svc-500's last endpoint in each response carrying it.
type edsClient struct {
	got chan string
}

func (c *edsClient) seen(resources []*anypb.Any) {
	for _, a := range resources {
		var cla endpointv3.ClusterLoadAssignment
		if a.UnmarshalTo(&cla) == nil && cla.GetClusterName() == "svc-500:8080" {
			eps := cla.GetEndpoints()[0].GetLbEndpoints()
			c.got <- eps[len(eps)-1].GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
		}
	}
}

// newSotwClient subscribes state-of-the-world, as grpc-go does.
func newSotwClient(tb testing.TB, conn *grpc.ClientConn, node string, clusters []string) *edsClient {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	c := &edsClient{got: make(chan string, 16)}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "gRPC Go"}, TypeUrl: typeEDS, ResourceNames: clusters}); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(c.got)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeEDS, ResourceNames: clusters,
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
				return
			}
			c.seen(resp.GetResources())
		}
	}()
	return c
}

// newDeltaClient subscribes incrementally, as Envoy does with delta ADS.
func newDeltaClient(tb testing.TB, conn *grpc.ClientConn, node string, clusters []string) *edsClient {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	c := &edsClient{got: make(chan string, 16)}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "envoy"}, TypeUrl: typeEDS, ResourceNamesSubscribe: clusters}); err != nil {
		tb.Fatal(err)
	}
	go func() {
		defer close(c.got)
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeEDS, ResponseNonce: resp.GetNonce()}); err != nil {
				return
			}
			var res []*anypb.Any
			for _, r := range resp.GetResources() {
				res = append(res, r.GetResource())
			}
			c.seen(res)
		}
	}()
	return c
}

// BenchmarkPushTo1000Proxies: one endpoint of svc-500 changes in the
// store; the time until each of 1,000 connected proxies (ADS streams, 10
// per connection) has received the new endpoints and sent its ACK. Proxies
// subscribe as they do: grpc-go clients (state of the world) to the
// endpoints of the service they call, here all svc-500; Envoy gateways
// (delta) to every cluster's.
func BenchmarkPushTo1000Proxies(b *testing.B) {
	all := make([]string, 1000)
	for i := range all {
		all[i] = fmt.Sprintf("svc-%d:8080", i)
	}
	for _, mode := range []struct {
		name     string
		clusters []string
		dial     func(testing.TB, *grpc.ClientConn, string, []string) *edsClient
	}{
		{"grpc-sotw-calling-svc-500", []string{"svc-500:8080"}, newSotwClient},
		{"envoy-delta-all-1000-clusters", all, newDeltaClient},
	} {
		b.Run(mode.name, func(b *testing.B) {
			const proxies, perConn = 1000, 10
			s, st, changed := pushTopology(b, proxies)
			var clients []*edsClient
			var conn *grpc.ClientConn
			for i := range proxies {
				if i%perConn == 0 {
					var err error
					if conn, err = grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
						b.Fatal(err)
					}
					defer conn.Close()
				}
				clients = append(clients, mode.dial(b, conn, fmt.Sprintf("default.gw-%d", i), mode.clusters))
			}
			for i, c := range clients {
				select {
				case <-c.got:
				case <-time.After(2 * time.Minute):
					b.Fatalf("proxy %d got no endpoints", i)
				}
			}
			var lat []time.Duration
			ctx := context.Background()
			i := 0
			for b.Loop() {
				i++
				addr := fmt.Sprintf("10.9.%d.%d", i/250%250, i%250+1)
				se := changed.Spec.(*v1alpha1.ServiceEndpoints)
				se.Endpoints[len(se.Endpoints)-1].Address = addr
				start := time.Now()
				updated, err := st.Update(ctx, changed)
				if err != nil {
					b.Fatal(err)
				}
				changed = updated
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for got := range c.got {
							if got == addr {
								return
							}
						}
					}()
				}
				wg.Wait()
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-all-acked-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-all-acked-ms")
		})
	}
}
