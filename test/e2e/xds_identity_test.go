package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// bootstrapNode is the node (id and token metadata) of the Envoy bootstrap
// the zone serves at url.
func bootstrapNode(t *testing.T, url string) *corev3.Node {
	t.Helper()
	code, body := call(t, "GET", url, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var boot bootstrapv3.Bootstrap
	if err := protojson.Unmarshal([]byte(body), &boot); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
	node := boot.GetNode()
	node.UserAgentName = "envoy"
	return node
}

// adsListeners is one ADS stream, state of the world or incremental, seen
// as listener requests and the listeners' names and bytes that come back.
type adsListeners interface {
	// request asks for listeners as node (nil: no node, as Envoy after its
	// first request), answering the last response: an ACK of it when ack,
	// else a request for everything afresh.
	request(node *corev3.Node, ack bool) error
	// recv returns one response's listeners by name, with the response's
	// bytes as they came on the wire.
	recv() (names []string, wire []byte, err error)
}

type sotwListeners struct {
	s              discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	nonce, version string
}

func (a *sotwListeners) request(node *corev3.Node, ack bool) error {
	req := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType, ResponseNonce: a.nonce}
	if ack {
		req.VersionInfo = a.version
	}
	return a.s.Send(req)
}

func (a *sotwListeners) recv() ([]string, []byte, error) {
	resp, err := a.s.Recv()
	if err != nil {
		return nil, nil, err
	}
	a.nonce, a.version = resp.GetNonce(), resp.GetVersionInfo()
	var names []string
	for _, r := range resp.GetResources() {
		var l listenerv3.Listener
		if err := r.UnmarshalTo(&l); err != nil {
			return nil, nil, fmt.Errorf("a listener that does not decode: %w", err)
		}
		names = append(names, l.GetName())
	}
	wire, err := proto.Marshal(resp)
	return names, wire, err
}

type deltaListeners struct {
	s     discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	nonce string
}

func (a *deltaListeners) request(node *corev3.Node, ack bool) error {
	req := &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType, ResponseNonce: a.nonce}
	if !ack && a.nonce != "" {
		req.ResourceNamesSubscribe = []string{"*"}
	}
	return a.s.Send(req)
}

func (a *deltaListeners) recv() ([]string, []byte, error) {
	resp, err := a.s.Recv()
	if err != nil {
		return nil, nil, err
	}
	a.nonce = resp.GetNonce()
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	wire, err := proto.Marshal(resp)
	return names, wire, err
}

// ingressOnly says why a response holds something only the zone's ingress
// may get: its listener, its clusters (named <mesh>/<cluster>) or its TLS
// key; "" when it holds none of these.
func ingressOnly(names []string, wire []byte) string {
	for _, n := range names {
		if n == "ingress" || strings.Contains(n, "/") {
			return fmt.Sprintf("the ingress's resource %q", n)
		}
	}
	if bytes.Contains(wire, []byte("PRIVATE KEY")) {
		return "a private key"
	}
	return ""
}

// identityZone is a zone with the gateway kong and one instance behind
// its ingress, and what a raw ADS client needs against it.
type identityZone struct {
	z             *process
	kong, ingress *corev3.Node // as the zone's bootstraps name them
	// open opens an ADS stream, "sotw" or "delta", ended with the test.
	open map[string]func(t *testing.T) adsListeners
}

func startIdentityZone(t *testing.T) *identityZone {
	t.Helper()
	xdsAddr := freePort(t)
	_, ingressPort, _ := net.SplitHostPort(freePort(t))
	z := startZone(t, "zone-1", t.TempDir(), "--xds-addr", xdsAddr, "--ingress-address", "127.0.0.1", "--ingress-port", ingressPort)
	for name, body := range map[string]string{"kong": kongJSON, "backend-1": dataplaneJSON("backend-1", "127.0.0.2", "9001")} {
		if code, resp := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+name, body); code != 201 {
			t.Fatalf("PUT dataplane %s: %d %s", name, code, resp)
		}
	}
	iz := &identityZone{z: z,
		kong:    bootstrapNode(t, z.apiURL+"/meshes/default/dataplanes/kong/bootstrap"),
		ingress: bootstrapNode(t, z.apiURL+"/zoneingresses/zone-1/bootstrap"),
	}
	if iz.kong.GetId() != "default.kong" || iz.ingress.GetId() != "zone-1" || len(iz.ingress.GetMetadata().GetFields()) == 0 {
		t.Fatalf("bootstraps name nodes %v and %v", iz.kong, iz.ingress)
	}
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	iz.open = map[string]func(t *testing.T) adsListeners{
		"sotw": func(t *testing.T) adsListeners {
			s, err := ads.StreamAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return &sotwListeners{s: s}
		},
		"delta": func(t *testing.T) adsListeners {
			s, err := ads.DeltaAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return &deltaListeners{s: s}
		},
	}
	return iz
}

// ingressGets checks that the ingress, admitted as itself on s, gets its
// listener and TLS key (which no other stream may see).
func (iz *identityZone) ingressGets(t *testing.T, s adsListeners) {
	t.Helper()
	if err := s.request(iz.ingress, false); err != nil {
		t.Fatal(err)
	}
	names, wire, err := s.recv()
	if err != nil {
		t.Fatalf("the ingress's first response: %v", err)
	}
	if got := ingressOnly(names, wire); !strings.Contains(got, `"ingress"`) || !bytes.Contains(wire, []byte("PRIVATE KEY")) {
		t.Fatalf("the ingress got listeners %v (%s), want its listener \"ingress\" with its key", names, got)
	}
}

// refusedMetric checks atoll_xds_refused_total{code} on the zone.
func (iz *identityZone) refusedMetric(t *testing.T, code codes.Code, want int) {
	t.Helper()
	status, metrics := call(t, "GET", iz.z.apiURL+"/metrics", "")
	line := fmt.Sprintf("atoll_xds_refused_total{code=%q} %d", code.String(), want)
	if status != 200 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(line)+`$`).MatchString(metrics) {
		t.Errorf("GET /metrics: %d, want %s in\n%s", status, line, metrics)
	}
}

// The contract: on an xDS stream admitted as a Dataplane, a
// request naming another node id — here the zone's ingress, whose
// configuration holds its TLS key — ends the stream with PermissionDenied
// and nothing of the ingress is sent on it, with or without the ingress's
// token, over state-of-the-world and incremental ADS alike. The ingress,
// admitted as itself, gets its configuration before and after.
func TestXDSStreamKeepsItsNode(t *testing.T) {
	iz := startIdentityZone(t)
	open, kong, ingress := iz.open, iz.kong, iz.ingress
	// The ingress stays connected while kong's streams try to switch: its
	// configuration is built and served, so only the identity check stands
	// between them and it.
	for _, mode := range []string{"sotw", "delta"} {
		iz.ingressGets(t, open[mode](t))
	}

	withoutToken := proto.Clone(ingress).(*corev3.Node)
	withoutToken.Metadata = nil
	for _, mode := range []string{"sotw", "delta"} {
		for what, switchTo := range map[string]*corev3.Node{"with the ingress's token": ingress, "without a token": withoutToken} {
			t.Run(mode+" "+what, func(t *testing.T) {
				s := open[mode](t)
				if err := s.request(kong, false); err != nil {
					t.Fatal(err)
				}
				names, wire, err := s.recv()
				if err != nil {
					t.Fatalf("kong's first response: %v", err)
				}
				if len(names) == 0 || ingressOnly(names, wire) != "" {
					t.Fatalf("kong's first response: listeners %v (%s)", names, ingressOnly(names, wire))
				}
				// Envoy sends the node only on the first request: a later
				// request without one is kong's.
				if err := s.request(nil, true); err != nil {
					t.Fatal(err)
				}
				if err := s.request(switchTo, false); err != nil {
					t.Fatal(err)
				}
				for {
					names, wire, err := s.recv()
					if err != nil {
						if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `admitted as node.id "default.kong"`) {
							t.Fatalf("the stream ended with %v, want PermissionDenied saying it was admitted as node.id \"default.kong\"", err)
						}
						break
					}
					if got := ingressOnly(names, wire); got != "" {
						t.Fatalf("a stream admitted as default.kong was sent %s after asking as node.id %q", got, switchTo.GetId())
					}
				}
			})
		}
	}

	// Every refusal is counted by its status code.
	iz.refusedMetric(t, codes.PermissionDenied, 4)
	// The ingress, on new streams, still gets its configuration.
	for _, mode := range []string{"sotw", "delta"} {
		iz.ingressGets(t, open[mode](t))
	}
}

// go-control-plane numbers state-of-the-world and incremental streams
// each from 1. Stream 1 of one kind must not pass for stream 1 of the
// other: with the ingress admitted on one, a first request naming the
// ingress without its token on the other is refused (Unauthenticated) and
// gets nothing of the ingress, and its end leaves the ingress's streams be.
func TestXDSStreamsOfEachKindAreApart(t *testing.T) {
	iz := startIdentityZone(t)
	noToken := proto.Clone(iz.ingress).(*corev3.Node)
	noToken.Metadata = nil
	// On a fresh zone: the ingress on sotw stream 1, then the other on
	// delta stream 1; the ingress on delta stream 2, the other on sotw
	// stream 2.
	for i, modes := range [][2]string{{"sotw", "delta"}, {"delta", "sotw"}} {
		t.Run(fmt.Sprintf("the ingress on %s stream %d", modes[0], i+1), func(t *testing.T) {
			iz.ingressGets(t, iz.open[modes[0]](t))
			s := iz.open[modes[1]](t)
			if err := s.request(noToken, false); err != nil {
				t.Fatal(err)
			}
			names, wire, err := s.recv()
			if got := ingressOnly(names, wire); got != "" || status.Code(err) != codes.Unauthenticated {
				t.Fatalf("%s stream %d asking as the ingress without its token: %s, %v; want nothing and Unauthenticated", modes[1], i+1, got, err)
			}
		})
	}
	iz.refusedMetric(t, codes.Unauthenticated, 2)
	// Both of the ingress's streams are still its own.
	if code, body := call(t, "GET", iz.z.apiURL+"/zoneingresses/zone-1/xds", ""); code != 200 || !strings.Contains(body, `"streams":2`) {
		t.Errorf("GET /zoneingresses/zone-1/xds: %d %s, want the ingress connected with 2 streams", code, body)
	}
}
