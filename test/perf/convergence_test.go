package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// BenchmarkProxyConvergence: an instance of a service in zone-2 moves to a
// new address; the time until a proxy in zone-1 (the gateway kong, over
// ADS) has been sent endpoints with the new address. The whole path: zone-2's
// store, KDS to the global, etcd, the global's endpoint index (a Direct
// mesh), KDS to zone-1, zone-1's store, its xDS server. Idle, and with
// 10,000 Dataplanes synced and ~100 changes/s of churn in zone-2.
func BenchmarkProxyConvergence(b *testing.B) {
	b.Run("idle", func(b *testing.B) { converge(b, false) })
	b.Run("loaded", func(b *testing.B) { converge(b, true) })
	b.Run("grpc-go-all", convergeGRPCGo)
}

func converge(b *testing.B, loaded bool) {
	t := start(b)
	if status, body := do("PUT", t.global+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != 200 {
		b.Fatalf("%d %s", status, body)
	}
	if status, body := do("PUT", t.zone1+"/meshes/default/dataplanes/kong",
		`{"type":"Dataplane","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`); status/100 != 2 {
		b.Fatalf("%d %s", status, body)
	}
	put(b, t.zone2, "conv-0", "conv", 3<<20, 8080)
	visible(b, t.zone1, "conv")

	// kong's proxy, from the bootstrap zone-1 serves for it.
	status, body := get(t.zone1 + "/meshes/default/dataplanes/kong/bootstrap?kind=proxyless")
	var boot struct {
		Servers []struct {
			URI string `json:"server_uri"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if status != 200 || json.Unmarshal(body, &boot) != nil || len(boot.Servers) != 1 {
		b.Fatalf("kong's bootstrap: %d %s", status, body)
	}
	conn, err := grpc.NewClient(boot.Servers[0].URI, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		b.Fatal(err)
	}
	meta, _ := structpb.NewStruct(map[string]any{"atoll.io/token": boot.Node.Metadata["atoll.io/token"]})
	node := &corev3.Node{Id: boot.Node.ID, UserAgentName: "gRPC Go", Metadata: meta}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.EndpointType, ResourceNames: []string{"conv:8080"}}); err != nil {
		b.Fatal(err)
	}
	// Every response is ACKed at once, as proxies do; the addresses it
	// carries go to got.
	got := make(chan string, 64)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			var addrs []string
			for _, a := range resp.GetResources() {
				var cla endpointv3.ClusterLoadAssignment
				if a.UnmarshalTo(&cla) == nil {
					for _, l := range cla.GetEndpoints() {
						for _, e := range l.GetLbEndpoints() {
							addrs = append(addrs, e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
						}
					}
				}
			}
			stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(),
				ResponseNonce: resp.GetNonce(), ResourceNames: []string{"conv:8080"}})
			got <- strings.Join(addrs, ",")
		}
	}()
	wait := func(addr string) {
		deadline := time.After(30 * time.Second)
		for {
			select {
			case a, ok := <-got:
				if !ok {
					b.Fatal("the ADS stream ended")
				}
				if a == addr {
					return
				}
			case <-deadline:
				b.Fatalf("kong's proxy never got %s", addr)
			}
		}
	}
	wait("10.48.0.0")
	if loaded {
		load(b, t.zone2, 10000)
		visible(b, t.zone1, "svc-999")
		stop := churn(t.zone2, 10000, true)
		defer stop(b)
	}

	var lat []time.Duration
	i := 1
	for b.Loop() {
		start := time.Now()
		put(b, t.zone2, "conv-0", "conv", 3<<20+i, 8080)
		wait(fmt.Sprintf("10.48.%d.%d", i>>8&255, i&255))
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func do(method, url, body string) (int, string) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
