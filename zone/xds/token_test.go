package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// adsStream opens a state-of-the-world ADS stream to s, closed with the test.
func adsStream(t *testing.T, s *Server, timeout time.Duration) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// firstResponse opens an ADS stream as node and returns the error of its
// first answer (nil when it got a configuration).
func firstResponse(t *testing.T, s *Server, node *corev3.Node) error {
	t.Helper()
	stream := adsStream(t, s, 10*time.Second)
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeCDS}); err != nil {
		t.Fatal(err)
	}
	_, err := stream.Recv()
	return err
}

func withToken(id, token string) *corev3.Node {
	n := &corev3.Node{Id: id, UserAgentName: "envoy"}
	if token != "" {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{TokenMetadataKey: structpb.NewStringValue(token)}}
	}
	return n
}

// The ingress needs its token; a Dataplane's proxy needs one only with
// RequireTokens, but a wrong one is always refused.
func TestProxyTokens(t *testing.T) {
	s, _, _ := pushTopology(t, 1)
	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(status.Convert(err).Message(), "atollctl bootstrap") {
			t.Errorf("%s: %v, want Unauthenticated pointing at the served bootstrap", what, err)
		}
	}
	refused("the ingress without a token", firstResponse(t, s, withToken("zone-1", "")))
	refused("the ingress with another node's token", firstResponse(t, s, withToken("zone-1", s.Token("default.gw-0"))))
	if err := firstResponse(t, s, withToken("zone-1", s.Token("zone-1"))); err != nil {
		t.Errorf("the ingress with its token: %v", err)
	}
	if err := firstResponse(t, s, withToken("default.gw-0", "")); err != nil {
		t.Errorf("a Dataplane's proxy without a token (not required): %v", err)
	}
	refused("a Dataplane's proxy with a wrong token", firstResponse(t, s, withToken("default.gw-0", "forged")))
	if err := firstResponse(t, s, withToken("default.gw-0", s.Token("default.gw-0"))); err != nil {
		t.Errorf("a Dataplane's proxy with its token: %v", err)
	}
	s.mu.Lock()
	s.cfg.RequireTokens = true
	s.mu.Unlock()
	refused("a Dataplane's proxy without a token (required)", firstResponse(t, s, withToken("default.gw-0", "")))
	// Each refusal is counted by its status.
	if n := testutil.ToFloat64(s.refused.WithLabelValues("Unauthenticated")); n != 4 {
		t.Errorf("atoll_xds_refused_total{code=Unauthenticated} = %v, want 4", n)
	}
}

// Tokens are a function of the key and the node.id.
func TestTokensFollowKeyAndNode(t *testing.T) {
	a, b := &Server{tokenKey: []byte("key-one-key-one-key-one")}, &Server{tokenKey: []byte("key-one-key-one-key-one")}
	if a.Token("default.kong") != b.Token("default.kong") || a.Token("default.kong") == a.Token("default.kon") {
		t.Error("the same key and node.id must give the same token, another node.id another")
	}
	if (&Server{tokenKey: []byte("key-two-key-two-key-two")}).Token("default.kong") == a.Token("default.kong") {
		t.Error("two keys give the same token")
	}
}
