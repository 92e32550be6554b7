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

// The contract: on an xDS stream admitted as a Dataplane, a
// request naming another node id — here the zone's ingress, whose
// configuration holds its TLS key — ends the stream with PermissionDenied
// and nothing of the ingress is sent on it, with or without the ingress's
// token, over state-of-the-world and incremental ADS alike. The ingress,
// admitted as itself, gets its configuration before and after.
func TestXDSStreamKeepsItsNode(t *testing.T) {
	xdsAddr := freePort(t)
	_, ingressPort, _ := net.SplitHostPort(freePort(t))
	z := startZone(t, "zone-1", t.TempDir(), "--xds-addr", xdsAddr, "--ingress-address", "127.0.0.1", "--ingress-port", ingressPort)
	for name, body := range map[string]string{"kong": kongJSON, "backend-1": dataplaneJSON("backend-1", "127.0.0.2", "9001")} {
		if code, resp := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+name, body); code != 201 {
			t.Fatalf("PUT dataplane %s: %d %s", name, code, resp)
		}
	}
	kong := bootstrapNode(t, z.apiURL+"/meshes/default/dataplanes/kong/bootstrap")
	ingress := bootstrapNode(t, z.apiURL+"/zoneingresses/zone-1/bootstrap")
	if kong.GetId() != "default.kong" || ingress.GetId() != "zone-1" || len(ingress.GetMetadata().GetFields()) == 0 {
		t.Fatalf("bootstraps name nodes %v and %v", kong, ingress)
	}

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := map[string]func(t *testing.T) adsListeners{
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

	// ingressGets checks that the ingress, admitted as itself, gets its
	// listener and TLS key (which the streams below must never see).
	ingressGets := func(t *testing.T, s adsListeners) {
		t.Helper()
		if err := s.request(ingress, false); err != nil {
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
	// The ingress stays connected while kong's streams try to switch: its
	// configuration is built and served, so only the identity check stands
	// between them and it.
	for _, mode := range []string{"sotw", "delta"} {
		ingressGets(t, open[mode](t))
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
	code, metrics := call(t, "GET", z.apiURL+"/metrics", "")
	if want := regexp.MustCompile(`(?m)^atoll_xds_refused_total\{code="PermissionDenied"\} 4$`); code != 200 || !want.MatchString(metrics) {
		t.Errorf("GET /metrics: %d, want atoll_xds_refused_total{code=\"PermissionDenied\"} 4 in\n%s", code, metrics)
	}
	// The ingress, on new streams, still gets its configuration.
	for _, mode := range []string{"sotw", "delta"} {
		ingressGets(t, open[mode](t))
	}
}
