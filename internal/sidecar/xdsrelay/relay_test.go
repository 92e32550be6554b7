package xdsrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// TestRelaysManyMessagesBothWays runs an ADS and a delta ADS stream
// through the relay, each with many requests sent while responses come
// back, and checks every response answers its request, in order, and that
// Envoy closing its side ends the stream with OK.
func TestRelaysManyMessagesBothWays(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	const n = 500

	t.Run("ads", func(t *testing.T) {
		s, err := e.client.StreamAggregatedResources(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			for i := range n {
				if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, VersionInfo: fmt.Sprint("v", i), ResponseNonce: fmt.Sprint(i)}); err != nil {
					sent <- err
					return
				}
			}
			sent <- s.CloseSend()
		}()
		for i := range n {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if resp.GetVersionInfo() != fmt.Sprint("v", i) || resp.GetNonce() != fmt.Sprint(i) || resp.GetTypeUrl() != clusterType {
				t.Fatalf("response %d answers another request: %v", i, resp)
			}
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after Envoy closed its side, the stream ended with %v, want OK (io.EOF)", err)
		}
	})

	t.Run("delta", func(t *testing.T) {
		s, err := e.client.DeltaAggregatedResources(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		sent := make(chan error, 1)
		go func() {
			for i := range n {
				if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: clusterType, ResponseNonce: fmt.Sprint(i)}); err != nil {
					sent <- err
					return
				}
			}
			sent <- s.CloseSend()
		}()
		for i := range n {
			resp, err := s.Recv()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if resp.GetNonce() != fmt.Sprint(i) || resp.GetTypeUrl() != clusterType {
				t.Fatalf("response %d answers another request: %v", i, resp)
			}
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after Envoy closed its side, the stream ended with %v, want OK (io.EOF)", err)
		}
	})
}

// TestRelaysAnyMethod calls a method the relay knows nothing of (the
// health service, unary) and one the zone does not serve.
func TestRelaysAnyMethod(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	resp, err := healthpb.NewHealthClient(e.conn).Check(testContext(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health through the relay: %v, want SERVING", resp.GetStatus())
	}
	err = e.conn.Invoke(testContext(t), "/atoll.Unknown/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "atoll.Unknown") {
		t.Fatalf("a method the zone does not serve: %v, want the zone's Unimplemented", err)
	}
}

// TestMessagesLargerThanGRPCDefault: a 10 MiB response (grpc-go receives
// 4 MiB by default) passes under the default limit; under a limit of
// 1 MiB it fails the stream with ResourceExhausted.
func TestMessagesLargerThanGRPCDefault(t *testing.T) {
	z := startZone(t, &zone{payload: 10 << 20}, nil)
	largeRecv := grpc.MaxCallRecvMsgSize(64 << 20) // the client stands in for Envoy, which has no limit
	for _, tc := range []struct {
		name string
		max  int
		want codes.Code
	}{
		{"default", 0, codes.OK},
		{"1MiB", 1 << 20, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startRelay(t, z.addr, Config{MaxMessageSize: tc.max})
			s, err := e.client.StreamAggregatedResources(testContext(t), largeRecv)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType}); err != nil {
				t.Fatal(err)
			}
			resp, err := s.Recv()
			if status.Code(err) != tc.want {
				t.Fatalf("a 10 MiB response: %v, want %v", err, tc.want)
			}
			if err == nil && len(resp.GetResources()[0].GetValue()) != 10<<20 {
				t.Fatalf("the response's resource has %d bytes, want %d", len(resp.GetResources()[0].GetValue()), 10<<20)
			}
		})
	}
}

// TestTokenIsCurrentForEachStream rewrites the token file between
// streams: each stream carries the file's content when it opened, and an
// authorization Envoy sent is replaced, not forwarded, while its other
// metadata is.
func TestTokenIsCurrentForEachStream(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	for i, token := range []string{"token-1", "token-2", "token-3"} {
		writeToken(t, e.tokenFile, token)
		ctx := metadata.AppendToOutgoingContext(testContext(t), "authorization", "Bearer forged-by-envoy", "x-envoy-note", "kept")
		roundTrip(t, e, ctx)
		md := z.streams()[i]
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+token {
			t.Fatalf("stream %d: the zone got authorization %q, want exactly [\"Bearer %s\"]", i, got, token)
		}
		if got := md.Get("x-envoy-note"); len(got) != 1 || got[0] != "kept" {
			t.Fatalf("stream %d: the zone got x-envoy-note %q, want [\"kept\"]", i, got)
		}
	}
}

// roundTrip opens an ADS stream, sends a request and reads its response.
func roundTrip(t *testing.T, e *relayEnv, ctx context.Context) {
	t.Helper()
	s, err := e.client.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, ResponseNonce: "1"}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.Recv(); err != nil || resp.GetNonce() != "1" {
		t.Fatalf("the zone's response: %v, %v", resp, err)
	}
	if h, err := s.Header(); err != nil || len(h.Get("x-zone-header")) != 1 {
		t.Fatalf("the zone's header x-zone-header did not reach the client: %v, %v", map[string][]string(h), err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("the stream ended with %v, want OK (io.EOF)", err)
	}
}

// TestBadTokenFileFailsTheStream: without a usable token the stream fails
// with Unavailable naming the file, and nothing reaches the zone; once the
// file is right, the next stream goes through.
func TestBadTokenFileFailsTheStream(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	for _, tc := range []struct {
		name  string
		setup func()
	}{
		{"missing", func() { os.Remove(e.tokenFile) }},
		{"empty", func() { writeToken(t, e.tokenFile, "") }},
		{"blank", func() { writeToken(t, e.tokenFile, " \t\n") }},
		{"not a token", func() { writeToken(t, e.tokenFile, "two words") }},
		{"a directory", func() { os.Remove(e.tokenFile); os.Mkdir(e.tokenFile, 0o700) }},
		{"too large", func() { writeToken(t, e.tokenFile, strings.Repeat("a", maxTokenSize+1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(e.tokenFile)
			tc.setup()
			s, err := e.client.StreamAggregatedResources(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Recv()
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), e.tokenFile) {
				t.Fatalf("stream with a %s token file: %v, want Unavailable naming %s", tc.name, err, e.tokenFile)
			}
			t.Log(err)
		})
	}
	if n := len(z.streams()); n != 0 {
		t.Fatalf("the zone saw %d streams, want none", n)
	}
	os.RemoveAll(e.tokenFile)
	writeToken(t, e.tokenFile, "token-ok")
	roundTrip(t, e, testContext(t))
	if got := z.streams()[0].Get("authorization"); len(got) != 1 || got[0] != "Bearer token-ok" {
		t.Fatalf("after the file was fixed the zone got %q", got)
	}
}

// TestZoneStatusReachesEnvoy: the zone refusing a stream with
// PermissionDenied reaches the client with the same code, message,
// details and trailer.
func TestZoneStatusReachesEnvoy(t *testing.T) {
	st, err := status.New(codes.PermissionDenied, `node.id "default.gw-1": the token is pod "gw-2"'s, not this Dataplane's pod's`).
		WithDetails(protoadapt.MessageV1Of(wrapperspb.String("detail")))
	if err != nil {
		t.Fatal(err)
	}
	z := startZone(t, &zone{refuse: st.Err()}, nil)
	e := startRelay(t, z.addr, Config{})
	s, err := e.client.StreamAggregatedResources(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	got := status.Convert(err)
	if !proto.Equal(got.Proto(), st.Proto()) {
		t.Fatalf("the client got %v, want the zone's %v", got.Proto(), st.Proto())
	}
	if reason := s.Trailer().Get("x-zone-reason"); len(reason) != 1 || reason[0] != "refused" {
		t.Fatalf("the client got trailer x-zone-reason %q, want [\"refused\"]", reason)
	}
	if h, _ := s.Header(); len(h.Get("x-zone-reason")) != 0 {
		t.Fatalf("the zone's trailer came as a header too: %v", map[string][]string(h))
	}
}

// TestEnvoyCancelEndsZoneStream: the client cancelling its stream cancels
// the zone's.
func TestEnvoyCancelEndsZoneStream(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	ctx, cancel := context.WithCancel(testContext(t))
	s, err := e.client.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, ResponseNonce: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-z.ended:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("the zone's stream ended with %v, want Canceled", err)
		}
	case <-testContext(t).Done():
		t.Fatal("the zone's stream is still open after the client cancelled its own")
	}
}

// TestRunStopsWhenCancelled: cancelling Run's context ends the open
// streams at both ends, Run returns nil, and the socket is gone.
func TestRunStopsWhenCancelled(t *testing.T) {
	z := startZone(t, &zone{}, nil)
	e := startRelay(t, z.addr, Config{})
	s, err := e.client.StreamAggregatedResources(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, ResponseNonce: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-testContext(t).Done():
		t.Fatal("Run did not return after its context ended")
	}
	e.done <- nil // for the cleanup
	lis, err := ListenUnix(e.sock)
	if err != nil {
		t.Fatalf("listening again on the relay's socket after it stopped: %v", err)
	}
	if err := e.relay.Run(testContext(t), lis); err == nil || !strings.Contains(err.Error(), "Run called twice") {
		t.Fatalf("a second Run: %v, want an error saying Run was called twice", err)
	}
	if _, err := s.Recv(); err == nil {
		t.Fatal("the client's stream is still open after the relay stopped")
	}
	select {
	case err := <-z.ended:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("the zone's stream ended with %v, want Canceled", err)
		}
	case <-testContext(t).Done():
		t.Fatal("the zone's stream is still open after the relay stopped")
	}
	if _, err := os.Lstat(e.sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the socket %s is still there after Run returned: %v", e.sock, err)
	}
	if c, err := net.Dial("unix", e.sock); err == nil {
		c.Close()
		t.Fatal("the relay's socket still accepts connections after Run returned")
	}
}

// TestForwardedMetadata: what crosses the relay from either side.
func TestForwardedMetadata(t *testing.T) {
	in := metadata.MD{
		"authorization":        {"Bearer envoys"},
		"proxy-authorization":  {"Basic x"},
		":authority":           {"atoll-xds"},
		"content-type":         {"application/grpc"},
		"user-agent":           {"envoy/1.36"},
		"te":                   {"trailers"},
		"grpc-accept-encoding": {"gzip"},
		"x-envoy-note":         {"a", "b"},
		"x-zone-reason":        {"refused"},
		"trace-bin":            {"\x00\x01"},
	}
	want := metadata.MD{"x-envoy-note": {"a", "b"}, "x-zone-reason": {"refused"}, "trace-bin": {"\x00\x01"}}
	got := forwarded(in)
	if !reflect.DeepEqual(got, want) {
		// metadata.MD's String redacts values: print the plain maps.
		t.Fatalf("forwarded(%v) = %v, want %v", map[string][]string(in), map[string][]string(got), map[string][]string(want))
	}
}
