package xdsrelay_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/sidecar/xdsrelay"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// podTokens stands in for the zone's TokenReview check (zone/kubernetes):
// it covers every Dataplane and accepts a token "<pod>/<n>" (n: the
// kubelet's rotation) for the Dataplane named <pod> only.
type podTokens struct {
	mu   sync.Mutex
	seen []string
}

func (p *podTokens) Covers(*resource.Resource) bool { return true }

func (p *podTokens) Authenticate(_ context.Context, bearer string, dp *resource.Resource) error {
	p.mu.Lock()
	p.seen = append(p.seen, bearer)
	p.mu.Unlock()
	if pod, _, _ := strings.Cut(bearer, "/"); pod != dp.Meta.Name {
		return status.Errorf(codes.PermissionDenied, "the token is pod %q's, not Dataplane %q's", pod, dp.Meta.Name)
	}
	return nil
}

func (p *podTokens) tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestThroughTheZonesXDSServer relays delta ADS streams to the zone's own
// xDS server (zone/xds), which reads the credential from the stream's
// metadata as it does in Kubernetes mode: the token the file holds when a
// stream opens is the one checked, rotations included; a credential the
// client sent itself does not reach the zone (the zone would refuse two);
// another pod's token is refused with the zone's status and message.
func TestThroughTheZonesXDSServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := &podTokens{}
	zoneAddr := startZoneXDS(t, ctx, auth)

	dir, err := os.MkdirTemp("", "xdsrelay")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tokenFile, sock := filepath.Join(dir, "token"), filepath.Join(dir, "xds.sock")
	r, err := xdsrelay.New(xdsrelay.Config{Upstream: zoneAddr, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := xdsrelay.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx, lis) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)

	firstResponse := func(token string) error {
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer gw-0/sent-by-envoy")
		s, err := client.DeltaAggregatedResources(sctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.CloseSend()
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "default.gw-0"}, TypeUrl: resourcev3.ClusterType}); err != nil {
			t.Fatal(err)
		}
		resp, err := s.Recv()
		if err == nil && resp.GetTypeUrl() != resourcev3.ClusterType {
			t.Fatalf("the zone answered with %q, want clusters", resp.GetTypeUrl())
		}
		return err
	}
	for _, token := range []string{"gw-0/1", "gw-0/2"} {
		if err := firstResponse(token); err != nil {
			t.Fatalf("token %s: %v", token, err)
		}
	}
	err = firstResponse("gw-1/1")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `the token is pod "gw-1"'s, not Dataplane "gw-0"'s`) {
		t.Fatalf("another pod's token: %v, want the zone's PermissionDenied", err)
	}
	if got, want := strings.Join(auth.tokens(), " "), "gw-0/1 gw-0/2 gw-1/1"; got != want {
		t.Fatalf("the zone checked tokens %q, want %q", got, want)
	}
}

// startZoneXDS runs the zone's xDS server for mesh default with the
// gateway Dataplane gw-0 and returns its address.
func startZoneXDS(t *testing.T, ctx context.Context, auth xds.ProxyAuthenticator) string {
	t.Helper()
	st := memstore.New()
	for _, r := range []*resource.Resource{
		{Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{}},
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "gw-0", Labels: map[string]string{resource.OriginLabel: resource.OriginZone}},
			Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{Address: "10.1.0.1",
				Gateway: &v1alpha1.Dataplane_Networking_Gateway{Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
					Tags: map[string]string{resource.ServiceTag: "gw"}}}}},
	} {
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.ServiceEndpointsType)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := xds.NewServer(xds.Config{Addr: "127.0.0.1:0", Zone: "zone-1", Domain: "mesh", Cache: cache, Store: st,
		ProxyAuthenticator: auth, RequireTokens: true, Log: slog.New(slog.DiscardHandler)})
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { <-done })
	for s.Addr() == nil {
		select {
		case <-ctx.Done():
			t.Fatal("the zone's xDS server did not listen")
		case <-time.After(time.Millisecond):
		}
	}
	return s.Addr().(*net.TCPAddr).String()
}
