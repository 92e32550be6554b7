package xds

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// fakeAuth covers the Dataplane gw-0 and accepts the token "good" only;
// the token "broken" fails with a plain error. It records what it saw.
type fakeAuth struct {
	mu   sync.Mutex
	seen []string // "<dataplane> <bearer>"
}

func (f *fakeAuth) Covers(dp *resource.Resource) bool { return dp.Meta.Name == "gw-0" }

func (f *fakeAuth) Authenticate(_ context.Context, bearer string, dp *resource.Resource) error {
	f.mu.Lock()
	f.seen = append(f.seen, dp.Meta.Name+" "+bearer)
	f.mu.Unlock()
	switch bearer {
	case "good":
		return nil
	case "broken":
		return errors.New("the API server is down")
	}
	return status.Error(codes.PermissionDenied, "another workload's credential")
}

// credentialFirst opens a stream (delta or not) with the given
// authorization metadata values and returns the error of its first answer.
func credentialFirst(t *testing.T, s *Server, delta bool, node *corev3.Node, authorization ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range authorization {
		ctx = metadata.AppendToOutgoingContext(ctx, AuthorizationMetadataKey, a)
	}
	if !delta {
		stream := adsStreamCtx(t, s, ctx)
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeCDS}); err != nil {
			t.Fatal(err)
		}
		_, err := stream.Recv()
		return err
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(grpcConn(t, s)).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeCDS}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	return err
}

// The server hands the stream's bearer token to its ProxyAuthenticator for
// the Dataplanes it covers, on both kinds of stream, and those need no
// zone token even when tokens are required; the others keep the zone's
// tokens; the ingress keeps its own.
func TestProxyAuthenticator(t *testing.T) {
	s, _, _ := pushTopology(t, 2)
	auth := &fakeAuth{}
	s.mu.Lock()
	s.cfg.ProxyAuthenticator = auth
	s.cfg.RequireTokens = true
	s.mu.Unlock()
	for _, delta := range []bool{false, true} {
		kind := map[bool]string{false: "state of the world", true: "incremental"}[delta]
		if err := credentialFirst(t, s, delta, withToken("default.gw-0", ""), "Bearer good"); err != nil {
			t.Errorf("%s: a covered Dataplane with a good credential and no zone token: %v", kind, err)
		}
		for _, c := range []struct {
			what          string
			node          *corev3.Node
			authorization []string
			code          codes.Code
			says          string
		}{
			{"no credential", withToken("default.gw-0", s.Token("default.gw-0")), nil, codes.Unauthenticated, "no credential"},
			{"two credentials", withToken("default.gw-0", ""), []string{"Bearer good", "Bearer good"}, codes.Unauthenticated, "send exactly one"},
			{"not a bearer", withToken("default.gw-0", ""), []string{"good"}, codes.Unauthenticated, `is not "Bearer <token>"`},
			{"an empty bearer", withToken("default.gw-0", ""), []string{"Bearer "}, codes.Unauthenticated, `is not "Bearer <token>"`},
			{"another workload's", withToken("default.gw-0", ""), []string{"Bearer other"}, codes.PermissionDenied, "another workload's credential"},
			{"a check that failed", withToken("default.gw-0", ""), []string{"Bearer broken"}, codes.Unavailable, "the API server is down"},
			{"an uncovered Dataplane with a credential but no zone token", withToken("default.gw-1", ""), []string{"Bearer good"}, codes.Unauthenticated, "no token in the node metadata"},
			{"the ingress with a credential only", withToken("zone-1", ""), []string{"Bearer good"}, codes.Unauthenticated, "no token in the node metadata"},
		} {
			err := credentialFirst(t, s, delta, c.node, c.authorization...)
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Errorf("%s: %s: %v; want %s saying %q", kind, c.what, err, c.code, c.says)
			}
		}
		if err := credentialFirst(t, s, delta, withToken("default.gw-1", s.Token("default.gw-1"))); err != nil {
			t.Errorf("%s: an uncovered Dataplane with its zone token: %v", kind, err)
		}
	}
	auth.mu.Lock()
	defer auth.mu.Unlock()
	for _, seen := range auth.seen {
		if !strings.HasPrefix(seen, "gw-0 ") {
			t.Errorf("the authenticator was asked about %q; it covers gw-0 only", seen)
		}
	}
	if len(auth.seen) != 2*3 {
		t.Errorf("the authenticator was asked %d times, want 6 (good, other, broken on each kind of stream): %q", len(auth.seen), auth.seen)
	}
	if n := testutil.ToFloat64(s.refused.WithLabelValues("PermissionDenied")); n != 2 {
		t.Errorf("atoll_xds_refused_total{code=PermissionDenied} = %v, want 2", n)
	}
	// Every stream has ended: none of their contexts is kept.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		kept := len(s.openCtx)
		s.mu.Unlock()
		if kept == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stream contexts still kept 10s after their streams ended", kept)
		}
	}
}

func grpcConn(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func adsStreamCtx(t *testing.T, s *Server, ctx context.Context) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(grpcConn(t, s)).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// A covered Dataplane that appears between the credential check (which
// found no Dataplane, so checked nothing) and admission is not admitted
// unchecked: the stream is refused as Unavailable and the proxy retries.
func TestAdmitRefusesACoveredDataplaneNotVouchedFor(t *testing.T) {
	s, _, _ := pushTopology(t, 2)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.ProxyAuthenticator = &fakeAuth{}
	_, err := s.admit(context.Background(), streamKey{id: -1}, withToken("default.gw-0", ""), false)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "before its credential was checked") {
		t.Errorf("admit of a covered Dataplane not vouched for = %v, want Unavailable", err)
	}
	if _, ok := s.streams[streamKey{id: -1}]; ok {
		t.Error("the refused stream was recorded as admitted")
	}
	// The same, vouched for, is admitted; an uncovered one needs no
	// credential (tokens are not required here).
	if _, err := s.admit(context.Background(), streamKey{id: -2}, withToken("default.gw-0", ""), true); err != nil {
		t.Errorf("admit vouched for = %v", err)
	}
	if _, err := s.admit(context.Background(), streamKey{id: -3}, withToken("default.gw-1", ""), false); err != nil {
		t.Errorf("admit of an uncovered Dataplane = %v", err)
	}
}
