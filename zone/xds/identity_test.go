package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// idStream is one ADS stream, state of the world or incremental, that
// sends requests of one type as a node and reports the names it gets.
type idStream interface {
	// send asks for typeURL as node (nil: no node), with the last nonce.
	send(node *corev3.Node, typeURL string) error
	recv() ([]string, error)
}

type sotwIDStream struct {
	s              discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	nonce, version map[string]string // by type
}

func (a *sotwIDStream) send(node *corev3.Node, typeURL string) error {
	return a.s.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL, ResponseNonce: a.nonce[typeURL], VersionInfo: a.version[typeURL]})
}

func (a *sotwIDStream) recv() ([]string, error) {
	resp, err := a.s.Recv()
	if err != nil {
		return nil, err
	}
	a.nonce[resp.GetTypeUrl()], a.version[resp.GetTypeUrl()] = resp.GetNonce(), resp.GetVersionInfo()
	var names []string
	for _, r := range resp.GetResources() {
		if r.GetTypeUrl() == typeLDS {
			var l listenerv3.Listener
			if err := r.UnmarshalTo(&l); err != nil {
				return nil, err
			}
			names = append(names, l.GetName())
			continue
		}
		names = append(names, r.GetTypeUrl())
	}
	return names, nil
}

type deltaIDStream struct {
	s     discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	nonce map[string]string // by type
}

func (a *deltaIDStream) send(node *corev3.Node, typeURL string) error {
	return a.s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL, ResponseNonce: a.nonce[typeURL]})
}

func (a *deltaIDStream) recv() ([]string, error) {
	resp, err := a.s.Recv()
	if err != nil {
		return nil, err
	}
	a.nonce[resp.GetTypeUrl()] = resp.GetNonce()
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	return names, nil
}

// A stream serves the node it was admitted as: repeating that node (with
// its token, as grpc-go may) or naming none keeps it; naming the ingress,
// even with the ingress's token, ends it with PermissionDenied before the
// ingress's listener is sent, and the refused stream leaves no node
// behind; a wrong token for the admitted node ends it Unauthenticated.
func TestStreamKeepsItsNode(t *testing.T) {
	s, store, _ := pushTopology(t, 1)
	// A local instance, for the ingress to have a listener.
	backend := dp("backend-1", "10.1.0.2", false, inb("backend", 9001, 0, true))
	backend.Meta.Version = ""
	if _, err := store.Create(context.Background(), backend); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := map[string]func(t *testing.T) idStream{
		"sotw": func(t *testing.T) idStream {
			st, err := ads.StreamAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return &sotwIDStream{s: st, nonce: map[string]string{}, version: map[string]string{}}
		},
		"delta": func(t *testing.T) idStream {
			st, err := ads.DeltaAggregatedResources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return &deltaIDStream{s: st, nonce: map[string]string{}}
		},
	}
	ingress := withToken("zone-1", s.Token("zone-1"))
	gw := withToken("default.gw-0", s.Token("default.gw-0"))
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// The ingress is connected: its configuration is built, and only the
	// identity check keeps it from the gateway's streams.
	ing := open["sotw"](t)
	must(t, ing.send(ingress, typeLDS))
	if names, err := ing.recv(); err != nil || len(names) != 1 || names[0] != IngressListener {
		t.Fatalf("the ingress got %v, %v; want its listener %q", names, err, IngressListener)
	}

	for _, mode := range []string{"sotw", "delta"} {
		t.Run(mode, func(t *testing.T) {
			st := open[mode](t)
			must(t, st.send(gw, typeCDS))
			if _, err := st.recv(); err != nil {
				t.Fatalf("the gateway's clusters: %v", err)
			}
			// The same node again, with its token, then no node: both the
			// gateway's, answered with its listeners.
			must(t, st.send(gw, typeCDS))
			must(t, st.send(nil, typeLDS))
			names, err := st.recv()
			if err != nil || len(names) == 0 {
				t.Fatalf("the gateway's listeners after repeating its node: %v, %v", names, err)
			}
			for _, n := range names {
				if n == IngressListener {
					t.Fatalf("the gateway got the ingress's listener")
				}
			}
			must(t, st.send(ingress, typeLDS))
			for {
				names, err := st.recv()
				if err != nil {
					if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `admitted as node.id "default.gw-0"`) {
						t.Fatalf("asking as the ingress: %v, want PermissionDenied naming the admitted node", err)
					}
					break
				}
				for _, n := range names {
					if n == IngressListener {
						t.Fatalf("a stream admitted as default.gw-0 got the ingress's listener")
					}
				}
			}
		})
	}
	st := open["delta"](t)
	must(t, st.send(gw, typeLDS))
	if _, err := st.recv(); err != nil {
		t.Fatal(err)
	}
	must(t, st.send(withToken("default.gw-0", "forged"), typeLDS))
	if _, err := st.recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the admitted node with a wrong token: %v, want Unauthenticated", err)
	}

	if n := testutil.ToFloat64(s.refused.WithLabelValues("PermissionDenied")); n != 2 {
		t.Errorf("atoll_xds_refused_total{code=PermissionDenied} = %v, want 2", n)
	}
	if n := testutil.ToFloat64(s.refused.WithLabelValues("Unauthenticated")); n != 1 {
		t.Errorf("atoll_xds_refused_total{code=Unauthenticated} = %v, want 1", n)
	}
	// The refused streams are closed before their status is sent: the
	// gateway is gone, the ingress still connected.
	s.mu.Lock()
	_, gwLeft := s.nodes["default.gw-0"]
	_, ingressThere := s.nodes["zone-1"]
	s.mu.Unlock()
	if gwLeft || !ingressThere {
		t.Errorf("after the refusals: gateway connected %v, ingress connected %v; want false, true", gwLeft, ingressThere)
	}
}

// go-control-plane numbers state-of-the-world and incremental streams
// each from 1: the ingress on sotw stream 1 does not admit delta stream 1,
// whose first request naming the ingress without its token is refused,
// and whose end leaves the ingress connected.
func TestStreamNumbersOfEachKindAreApart(t *testing.T) {
	s, store, _ := pushTopology(t, 0)
	backend := dp("backend-1", "10.1.0.2", false, inb("backend", 9001, 0, true))
	backend.Meta.Version = ""
	if _, err := store.Create(context.Background(), backend); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sotw, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ing := &sotwIDStream{s: sotw, nonce: map[string]string{}, version: map[string]string{}}
	if err := ing.send(withToken("zone-1", s.Token("zone-1")), typeLDS); err != nil {
		t.Fatal(err)
	}
	if names, err := ing.recv(); err != nil || len(names) != 1 || names[0] != IngressListener {
		t.Fatalf("the ingress got %v, %v; want its listener %q", names, err, IngressListener)
	}
	delta, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := &deltaIDStream{s: delta, nonce: map[string]string{}}
	if err := other.send(withToken("zone-1", ""), typeLDS); err != nil {
		t.Fatal(err)
	}
	if names, err := other.recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("delta stream 1 asking as the ingress without its token: %v, %v; want Unauthenticated", names, err)
	}
	s.mu.Lock()
	streams := -1
	if n := s.nodes["zone-1"]; n != nil {
		streams = n.streams
	}
	s.mu.Unlock()
	if streams != 1 {
		t.Errorf("the ingress after delta stream 1 ended has %d streams (-1: not connected), want 1", streams)
	}
}
