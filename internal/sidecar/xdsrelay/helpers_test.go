package xdsrelay

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
)

// wait bounds every wait of these tests for something that should happen
// at once; it only turns a hang into a failure.
const wait = 20 * time.Second

// zone is a real gRPC server standing in for the zone's xDS server: it
// registers go-control-plane's ADS and delta ADS services (and the gRPC
// health service, a method Envoy does not use today), records each
// stream's metadata and how it ended, and answers every request with a
// response echoing it, after a header x-zone-header: sent on ADS.
type zone struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	addr string

	// refuse, when set, ends each stream with this error at its first
	// request, after setting a trailer x-zone-reason: refused.
	refuse error
	// payload is the size of a resource added to every ADS response.
	payload int

	mu  sync.Mutex
	mds []metadata.MD
	// ended receives the error that ended each stream's handler (nil:
	// the client closed its side).
	ended chan error
}

func (z *zone) opened(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	z.mu.Lock()
	z.mds = append(z.mds, md.Copy())
	z.mu.Unlock()
}

// streams is the metadata of every stream opened so far, in order.
func (z *zone) streams() []metadata.MD {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]metadata.MD(nil), z.mds...)
}

func (z *zone) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) (err error) {
	z.opened(s.Context())
	defer func() { z.ended <- err }()
	if z.refuse == nil {
		if err := s.SendHeader(metadata.Pairs("x-zone-header", "sent")); err != nil {
			return err
		}
	}
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if z.refuse != nil {
			s.SetTrailer(metadata.Pairs("x-zone-reason", "refused"))
			return z.refuse
		}
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: req.GetTypeUrl(), VersionInfo: req.GetVersionInfo(), Nonce: req.GetResponseNonce()}
		if z.payload > 0 {
			resp.Resources = []*anypb.Any{{TypeUrl: req.GetTypeUrl(), Value: make([]byte, z.payload)}}
		}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

func (z *zone) DeltaAggregatedResources(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) (err error) {
	z.opened(s.Context())
	defer func() { z.ended <- err }()
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: req.GetTypeUrl(), SystemVersionInfo: req.GetResponseNonce(), Nonce: req.GetResponseNonce()}
		if err := s.Send(resp); err != nil {
			return err
		}
	}
}

// startZone serves a zone on 127.0.0.1, with TLS when cert is set.
func startZone(t *testing.T, z *zone, cert *tls.Certificate) *zone {
	t.Helper()
	z.ended = make(chan error, 100)
	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
	}
	srv := grpc.NewServer(opts...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, z)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return z
}

// relayEnv is a running relay with its token file, socket and the client
// standing in for Envoy.
type relayEnv struct {
	relay     *Relay
	tokenFile string
	sock      string
	cancel    context.CancelFunc
	done      chan error
	client    discoveryv3.AggregatedDiscoveryServiceClient
	conn      *grpc.ClientConn
}

// shortDir is a temporary directory with a path short enough for a Unix
// socket (108 bytes), which t.TempDir's need not be.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "xdsrelay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startRelay runs a relay to upstream with cfg's other fields, a token
// file holding "token-1", on a socket in a new directory, and connects a
// client to it.
func startRelay(t *testing.T, upstream string, cfg Config) *relayEnv {
	t.Helper()
	dir := shortDir(t)
	e := &relayEnv{tokenFile: filepath.Join(dir, "token"), sock: filepath.Join(dir, "xds.sock"), done: make(chan error, 1)}
	writeToken(t, e.tokenFile, "token-1")
	cfg.Upstream, cfg.TokenFile = upstream, e.tokenFile
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.relay = r
	lis, err := ListenUnix(e.sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- r.Run(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.done:
		case <-time.After(wait):
			t.Error("the relay's Run did not return after its context ended")
		}
	})
	e.conn, err = grpc.NewClient("unix://"+e.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	e.client = discoveryv3.NewAggregatedDiscoveryServiceClient(e.conn)
	return e
}

func writeToken(t *testing.T, path, token string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends the relay's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// testContext ends with the test, and after wait at the latest.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}
