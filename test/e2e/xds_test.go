package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/encoding/protojson"

	// The bootstrap's HTTP/2 option, for reading it back.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// backendServer is a real gRPC server that answers with its name.
type backendServer struct {
	testgrpc.UnimplementedTestServiceServer
	name string
	srv  *grpc.Server
	addr string
}

func (b *backendServer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: b.name}, nil
}

// startBackend serves on host:port (port "0": a free one).
func startBackend(t *testing.T, name, host, port string) *backendServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		t.Fatalf("backend %s: %v", name, err)
	}
	b := &backendServer{name: name, srv: grpc.NewServer(), addr: ln.Addr().String()}
	testgrpc.RegisterTestServiceServer(b.srv, b)
	go b.srv.Serve(ln)
	t.Cleanup(b.srv.Stop)
	return b
}

// startBackends starts one backend per loopback host, all on the same
// port: instances of one service share its port. The port is picked free
// on the first host, and the set retried if another host has it taken.
func startBackends(t *testing.T, names, hosts []string) ([]*backendServer, string) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first := startBackend(t, names[0], hosts[0], "0")
		_, port, _ := net.SplitHostPort(first.addr)
		out := []*backendServer{first}
		for i := 1; i < len(names); i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort(hosts[i], port))
			if err != nil {
				break
			}
			ln.Close()
			out = append(out, startBackend(t, names[i], hosts[i], port))
		}
		if len(out) == len(names) {
			return out, port
		}
		for _, b := range out {
			b.srv.Stop()
		}
	}
	t.Fatal("no port free on every loopback host")
	return nil, ""
}

func dataplaneJSON(name, addr, port string) string {
	return fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":%q,"networking":{"address":%q,"inbound":[{"port":%s,"tags":{"atoll.io/service":"backend","atoll.io/protocol":"grpc"}}]}}`, name, addr, port)
}

// xdsClientFromBootstrap is a gRPC client of target resolved by grpc-go's
// xDS client, started from bootstrap.
func xdsClientFromBootstrap(t *testing.T, bootstrap []byte, target string) testgrpc.TestServiceClient {
	t.Helper()
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// reached makes n calls and returns who answered them (and "error: ..."
// for failed ones).
func reached(c testgrpc.TestServiceClient, n int) map[string]int {
	out := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			out["error: "+status.Code(err).String()]++
			continue
		}
		out[resp.GetHostname()]++
	}
	return out
}

// waitReached waits until 30 calls in a row are answered by exactly the
// backends in want (each at least once).
func waitReached(t *testing.T, c testgrpc.TestServiceClient, what string, want ...string) {
	t.Helper()
	waitFor(t, syncWait, what, func() error {
		got := reached(c, 30)
		if len(got) != len(want) {
			return fmt.Errorf("answered by %v, want %v", got, want)
		}
		for _, w := range want {
			if got[w] == 0 {
				return fmt.Errorf("answered by %v, want %v", got, want)
			}
		}
		return nil
	})
}

// The contract: with crossZone Direct, grpc-go's xDS client as the
// gateway kong in zone-1 calls xds:///backend.mesh:PORT and reaches the
// backends registered in zone-2; it follows instances coming and going,
// prefers local instances, fails over, and loses zone-2 when it is
// disabled; the zone restarting does not break it.
func TestProxylessGatewayReachesOtherZones(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	if status, body := call(t, "PUT", g.apiURL+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	xdsAddr := freePort(t)
	z1dir := t.TempDir()
	z1 := startSyncedZone(t, "zone-1", z1dir, g.kdsAddr, g.caFile(), "--xds-addr", xdsAddr)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/kong", kongJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	backends, port := startBackends(t, []string{"b1", "b2", "b3", "local-1"}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"})
	register := func(z *process, b *backendServer) {
		t.Helper()
		host, _, _ := net.SplitHostPort(b.addr)
		if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+b.name, dataplaneJSON(b.name, host, port)); status != 201 {
			t.Fatalf("%d %s", status, body)
		}
	}
	remove := func(z *process, name string) {
		t.Helper()
		if status, body := call(t, "DELETE", z.apiURL+"/meshes/default/dataplanes/"+name, ""); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	register(z2, backends[0])
	register(z2, backends[1])

	// The client starts from the bootstrap the zone serves for kong.
	bootstrap, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "bootstrap", "dataplane", "kong", "--kind", "proxyless")
	if err != nil || !strings.Contains(bootstrap, `"default.kong"`) || !strings.Contains(bootstrap, `"`+xdsAddr+`"`) {
		t.Fatalf("atollctl bootstrap dataplane kong --kind proxyless: %v %q\n%s", err, errOut, bootstrap)
	}
	client := xdsClientFromBootstrap(t, []byte(bootstrap), "xds:///backend.mesh:"+port)
	waitReached(t, client, "zone-2's backends", "b1", "b2")

	// The zone lists its connected proxies, in sync once they ACKed.
	waitFor(t, syncWait, "kong listed in sync", func() error {
		out, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "get", "proxies")
		if err != nil || !regexp.MustCompile(`(?m)^default\s+kong\s+proxyless-grpc\s+\d+\s+.* ago\s+in sync$`).MatchString(out) {
			return fmt.Errorf("atollctl get proxies: %v %q\n%s", err, errOut, out)
		}
		return nil
	})
	status, body := call(t, "GET", z1.apiURL+"/meshes/default/dataplanes/kong/xds", "")
	if status != 200 || !strings.Contains(body, `"proxyless-grpc"`) || !strings.Contains(body, `"ClusterLoadAssignment"`) {
		t.Errorf("GET .../kong/xds: %d %s", status, body)
	}

	// atollctl inspect -o json prints what the proxy gets: by default of
	// the kind connected (proxyless here), or another kind on request
	// (its route table: cli_output_test.go).
	out, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "inspect", "dataplane", "kong", "-o", "json")
	if err != nil || !strings.Contains(out, `"backend.mesh:`+port+`"`) || !strings.Contains(out, `"127.0.0.3"`) || !strings.Contains(out, `"zone-2"`) {
		t.Errorf("atollctl inspect dataplane kong -o json: %v %q\n%s", err, errOut, out)
	}
	if out, _, err := atollctl(t, "", "--api-url", z1.apiURL, "inspect", "dataplane", "kong", "--kind", "envoy", "-o", "json"); err != nil || !strings.Contains(out, `"outbound"`) {
		t.Errorf("atollctl inspect dataplane kong --kind envoy -o json: %v\n%s", err, out)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "inspect", "dataplane", "nope"); err == nil || !strings.Contains(errOut, `no Dataplane "nope"`) {
		t.Errorf("inspecting an unknown Dataplane: %v %q", err, errOut)
	}

	register(z2, backends[2])
	waitReached(t, client, "a new instance", "b1", "b2", "b3")
	remove(z2, "b1")
	waitReached(t, client, "a removed instance gone", "b2", "b3")

	// A local instance takes everything; when it goes, zone-2 again.
	register(z1, backends[3])
	waitReached(t, client, "the local instance preferred", "local-1")
	remove(z1, "local-1")
	waitReached(t, client, "failover to zone-2", "b2", "b3")

	// zone-2 disabled: no remote endpoints, so no backend at all.
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":false}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	waitReached(t, client, "zone-2 withdrawn", "error: "+codes.Unavailable.String())
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":true}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	waitReached(t, client, "zone-2 back", "b2", "b3")

	// The zone restarts under a connected client, which reconnects and
	// follows changes made after.
	z1.stop()
	z1 = startSyncedZone(t, "zone-1", z1dir, g.kdsAddr, g.caFile(), "--xds-addr", xdsAddr)
	register(z2, backends[0])
	waitReached(t, client, "a change after the zone restarted", "b1", "b2", "b3")

	// Back to Ingress mode: the global stops relaying zone-2's instances
	// and zone-1 drops them.
	if status, body := call(t, "PUT", g.apiURL+"/meshes/default", `{"type":"Mesh"}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	waitFor(t, syncWait, "zone-1 to drop zone-2's ServiceEndpoints", func() error {
		if status, body := call(t, "GET", z1.apiURL+"/meshes/default/serviceendpoints", ""); status != 200 || !strings.Contains(body, `"total":0`) {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
}

// An unknown node.id is refused with a status that says why, for both
// state-of-the-world and incremental ADS.
func TestXDSRefusesUnknownNodes(t *testing.T) {
	xdsAddr := freePort(t)
	z := startZone(t, "zone-1", t.TempDir(), "--xds-addr", xdsAddr)
	// With no proxy connected, a Dataplane's configuration is still shown.
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/kong", kongJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	if status, body := call(t, "GET", z.apiURL+"/meshes/default/dataplanes/kong/xds/config", ""); status != 200 || !strings.Contains(body, `"outbound"`) {
		t.Errorf("config of kong with no proxy connected: %d %s", status, body)
	}
	if status, _ := call(t, "GET", z.apiURL+"/meshes/default/dataplanes/kong/xds", ""); status != 404 {
		t.Errorf("status of kong's proxy, not connected: %d, want 404", status)
	}
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	for _, c := range []struct {
		node string
		code codes.Code
		says string
	}{
		{"default.nope", codes.NotFound, `no Dataplane "nope" in mesh "default"`},
		{"default.", codes.InvalidArgument, "use <mesh>.<dataplane name>"},
		{"zone-9", codes.NotFound, `its ingress connects as node.id "zone-1"`},
	} {
		var mu sync.Mutex
		errs := map[string]error{}
		check := func(mode string, err error) {
			mu.Lock()
			defer mu.Unlock()
			errs[mode] = err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sotw, err := ads.StreamAggregatedResources(ctx)
		if err == nil {
			err = sotw.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: c.node}, TypeUrl: resourcev3.ListenerType})
		}
		if err == nil {
			_, err = sotw.Recv()
		}
		check("sotw", err)
		delta, err := ads.DeltaAggregatedResources(ctx)
		if err == nil {
			err = delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: c.node}, TypeUrl: resourcev3.ListenerType})
		}
		if err == nil {
			_, err = delta.Recv()
		}
		check("delta", err)
		cancel()
		for mode, err := range errs {
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Errorf("%s, node %q: %v; want %s saying %q", mode, c.node, err, c.code, c.says)
			}
		}
	}
}

// The zone's ingress proxy (node.id = the zone's name) gets a listener
// that routes TLS from other zones by SNI to this zone's instances.
func TestIngressProxyRoutesBySNI(t *testing.T) {
	xdsAddr := freePort(t)
	z := startZone(t, "zone-1", t.TempDir(), "--xds-addr", xdsAddr, "--ingress-address", "127.0.0.1", "--ingress-port", "10011")
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/backend-1", dataplaneJSON("backend-1", "127.0.0.2", "9001")); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	// The zone serves the ingress Envoy's bootstrap: its node.id and the
	// xDS server, which the proxy below connects to as it says.
	out, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "ingress", "zone-1")
	if err != nil {
		t.Fatalf("atollctl bootstrap ingress zone-1: %v %q", err, errOut)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal([]byte(out), &boot); err != nil {
		t.Fatalf("the ingress bootstrap: %v\n%s", err, out)
	}
	if err := boot.ValidateAll(); err != nil {
		t.Errorf("the ingress bootstrap: %v", err)
	}
	xa := boot.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	bootXDS := net.JoinHostPort(xa.GetAddress(), fmt.Sprint(xa.GetPortValue()))
	if boot.GetNode().GetId() != "zone-1" || bootXDS != xdsAddr {
		t.Errorf("the ingress bootstrap names node %q and xDS server %s, want zone-1 and %s", boot.GetNode().GetId(), bootXDS, xdsAddr)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "ingress", "zone-2"); err == nil || !strings.Contains(errOut, "zone-2's own API") {
		t.Errorf("another zone's ingress bootstrap: %v %q", err, errOut)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "dataplane", "nope"); err == nil || !strings.Contains(errOut, "register it with this zone first") {
		t.Errorf("the bootstrap of an unknown Dataplane: %v %q", err, errOut)
	}
	if status, body := call(t, "GET", z.apiURL+"/meshes/default/dataplanes/backend-1/bootstrap?xds=nope", ""); status != 400 || !strings.Contains(body, "host:port") {
		t.Errorf("a bootstrap with ?xds=nope: %d %s", status, body)
	}

	conn, err := grpc.NewClient(bootXDS, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Without its token (in the bootstrap's node metadata) the ingress is
	// refused: its configuration carries its TLS key.
	bare, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err == nil {
		err = bare.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "zone-1", UserAgentName: "envoy"}, TypeUrl: resourcev3.ListenerType})
	}
	if err == nil {
		_, err = bare.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("the ingress without its token: %v, want Unauthenticated", err)
	}
	node := boot.GetNode()
	node.UserAgentName = "envoy"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 {
		t.Fatalf("the ingress got %d listeners, want 1", len(resp.GetResources()))
	}
	var l listenerv3.Listener
	if err := resp.GetResources()[0].UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	if err := l.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 10011 || len(l.GetFilterChains()) != 1 {
		t.Fatalf("ingress listener %s:%d with %d filter chains", sa.GetAddress(), sa.GetPortValue(), len(l.GetFilterChains()))
	}
	fc := l.GetFilterChains()[0]
	if sni := fc.GetFilterChainMatch().GetServerNames(); len(sni) != 1 || sni[0] != "backend.9001.default" {
		t.Errorf("filter chain for SNI %v, want backend.9001.default", sni)
	}
	if fc.GetTransportSocket().GetName() != "envoy.transport_sockets.tls" {
		t.Errorf("the ingress does not terminate TLS: %v", fc.GetTransportSocket())
	}
	if status, body := call(t, "GET", z.apiURL+"/zoneingresses/zone-1/xds", ""); status != 200 || !strings.Contains(body, `"kind":"ingress"`) {
		t.Errorf("GET /zoneingresses/zone-1/xds: %d %s", status, body)
	}
}

// A zone serving xDS over TLS: the bootstraps it serves connect over TLS
// to it (grpc-go's client reaches a backend through it), and a plaintext
// client gets nothing.
func TestXDSOverTLS(t *testing.T) {
	xdsAddr := freePort(t)
	z := startZone(t, "zone-1", t.TempDir(), "--xds-addr", xdsAddr, "--xds-tls")
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/kong", kongJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	_, port := startBackends(t, []string{"local-1"}, []string{"127.0.0.2"})
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/local-1", dataplaneJSON("local-1", "127.0.0.2", port)); status != 201 {
		t.Fatalf("%d %s", status, body)
	}

	if _, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "dataplane", "kong", "--kind", "proxyless"); err == nil || !strings.Contains(errOut, "--ca-file") {
		t.Errorf("a proxyless bootstrap without a CA file from a TLS zone: %v %q", err, errOut)
	}
	caFile := filepath.Join(t.TempDir(), "xds-ca.pem")
	bootstrap, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "dataplane", "kong", "--kind", "proxyless", "--ca-file", caFile)
	if err != nil || !strings.Contains(bootstrap, `"tls"`) {
		t.Fatalf("atollctl bootstrap --ca-file: %v %q\n%s", err, errOut, bootstrap)
	}
	if _, body := call(t, "GET", z.apiURL+"/xds-ca.pem", ""); !strings.HasPrefix(body, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("/xds-ca.pem: %q", body)
	}
	client := xdsClientFromBootstrap(t, []byte(bootstrap), "xds:///backend.mesh:"+port)
	waitReached(t, client, "the local backend over xDS with TLS", "local-1")

	// Envoy's bootstrap carries the CA; the ADS connection it describes
	// works, and a plaintext one does not.
	out, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "bootstrap", "dataplane", "kong")
	if err != nil {
		t.Fatalf("%v %q", err, errOut)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal([]byte(out), &boot); err != nil || boot.ValidateAll() != nil {
		t.Fatalf("Envoy bootstrap: %v %v", err, boot.ValidateAll())
	}
	var upstream tlsv3.UpstreamTlsContext
	if err := boot.GetStaticResources().GetClusters()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&upstream); err != nil {
		t.Fatalf("Envoy bootstrap without TLS to the xDS server: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(upstream.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetInlineBytes()) {
		t.Fatal("the Envoy bootstrap's CA does not parse")
	}
	host, _, _ := net.SplitHostPort(xdsAddr)
	ads := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err == nil {
			node := boot.GetNode()
			node.UserAgentName = "envoy"
			err = stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType})
		}
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	if err := ads(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: host})); err != nil {
		t.Errorf("ADS over TLS as the Envoy bootstrap says: %v", err)
	}
	if err := ads(insecure.NewCredentials()); err == nil {
		t.Error("a plaintext ADS client got a configuration from a TLS zone")
	}
}
