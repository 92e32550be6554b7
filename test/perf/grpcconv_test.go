package perf

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
)

// grpcGoChannels is how many services the gateway holds channels to in
// convergeGRPCGo: one measured, the others registered and connected too.
const grpcGoChannels = 1000

// namedBackend is a real gRPC server answering with its name.
type namedBackend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (n *namedBackend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: n.name}, nil
}

// startNamedBackends serves one backend on each host, all on one port
// (instances of a service share it), named by their host, and returns the
// port.
func startNamedBackends(b *testing.B, hosts ...string) int {
	for range 20 {
		var lns []net.Listener
		port := 0
		for _, h := range hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
			port = ln.Addr().(*net.TCPAddr).Port
		}
		if len(lns) < len(hosts) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for i, ln := range lns {
			srv := grpc.NewServer()
			testgrpc.RegisterTestServiceServer(srv, &namedBackend{name: hosts[i]})
			go srv.Serve(ln)
			b.Cleanup(srv.Stop)
		}
		return port
	}
	b.Fatal("no port free on every loopback host")
	return 0
}

// grpcDataplane registers name in zone, one gRPC inbound of service.
func grpcDataplane(b *testing.B, zoneURL, name, service, addr string, port int) {
	body := fmt.Sprintf(`{"type":"Dataplane","networking":{"address":%q,"inbound":[{"port":%d,"tags":{"atoll.io/service":%q,"atoll.io/protocol":"grpc"}}]}}`,
		addr, port, service)
	if status, out := do("PUT", zoneURL+"/meshes/default/dataplanes/"+name, body); status/100 != 2 {
		b.Fatalf("PUT %s: %d %s", name, status, out)
	}
}

// convergeGRPCGo: the gateway kong in zone-1 is grpc-go's own xDS client,
// started from the bootstrap zone-1 serves for it, holding a channel to
// each of grpcGoChannels services in zone-2 (a Direct mesh), every one
// connected. As grpc-go does, each channel target has its own xDS client
// and ADS stream. The measured service's one instance moves between two
// real backends on two loopback addresses; the time is from the PUT in
// zone-2 until a call on its channel is answered by the backend at the new
// address: zone-2, KDS, the global, KDS, zone-1, its xDS server, grpc-go's
// xDS client and balancer, and its connection to the new address.
func convergeGRPCGo(b *testing.B) {
	t := start(b)
	if status, body := do("PUT", t.global+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != 200 {
		b.Fatalf("%d %s", status, body)
	}
	if status, body := do("PUT", t.zone1+"/meshes/default/dataplanes/kong",
		`{"type":"Dataplane","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`); status/100 != 2 {
		b.Fatalf("%d %s", status, body)
	}
	hosts := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port := startNamedBackends(b, hosts...)
	grpcDataplane(b, t.zone2, "moving-0", "moving", hosts[0], port)
	for i := 1; i < grpcGoChannels; i++ {
		grpcDataplane(b, t.zone2, fmt.Sprintf("other-%d", i), fmt.Sprintf("other-%d", i), hosts[2], port)
	}
	visible(b, t.zone1, fmt.Sprintf("other-%d", grpcGoChannels-1))

	status, bootstrap := get(t.zone1 + "/meshes/default/dataplanes/kong/bootstrap?kind=proxyless")
	if status != 200 {
		b.Fatalf("kong's bootstrap: %d %s", status, bootstrap)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		b.Fatal(err)
	}
	conns := make([]*grpc.ClientConn, grpcGoChannels)
	for i := range conns {
		target := fmt.Sprintf("xds:///other-%d.mesh:%d", i, port)
		if i == 0 {
			target = fmt.Sprintf("xds:///moving.mesh:%d", port)
		}
		conns[i], err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
		if err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	// Every channel connected: each has had a call answered.
	setup := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	sem := make(chan struct{}, 32)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			want := hosts[2]
			if i == 0 {
				want = hosts[0]
			}
			if err := answeredBy(c, want, 2*time.Minute); err != nil {
				errs <- fmt.Errorf("channel %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("%d channels connected in %v", len(conns), time.Since(setup).Round(time.Millisecond))
	for _, c := range conns[1:] {
		if s := c.GetState(); s != connectivity.Ready {
			b.Fatalf("a channel is %v", s)
		}
	}

	var lat []time.Duration
	i := 1
	for b.Loop() {
		to := hosts[i%2]
		start := time.Now()
		grpcDataplane(b, t.zone2, "moving-0", "moving", to, port)
		if err := answeredBy(conns[0], to, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(grpcGoChannels, "channels")
}

// answeredBy calls on c until a call is answered by the backend named want.
func answeredBy(c *grpc.ClientConn, want string, within time.Duration) error {
	client := testgrpc.NewTestServiceClient(c)
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && resp.GetHostname() == want {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "answered by " + resp.GetHostname()
		}
	}
	return fmt.Errorf("never answered by %s (last: %s)", want, last)
}
