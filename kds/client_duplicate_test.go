package kds_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/kds"
)

// refusingHandler refuses every session as a duplicate, recording who
// asked.
type refusingHandler struct {
	mu    sync.Mutex
	peers []kds.Peer
}

func (h *refusingHandler) Connect(context.Context, string, *v1alpha1.Hello) (kds.Endpoint, error) {
	return newEndpoint(), nil
}

func (h *refusingHandler) Claim(zone string, from kds.Peer, _ *kds.Session, _ context.CancelFunc) error {
	h.mu.Lock()
	h.peers = append(h.peers, from)
	h.mu.Unlock()
	return status.Errorf(codes.AlreadyExists, "zone %s is already connected from 127.0.0.1:1 (since 10:02:03 UTC)", zone)
}

func (h *refusingHandler) Started(string, *kds.Session)      {}
func (h *refusingHandler) Ended(string, *kds.Session, error) {}

func (h *refusingHandler) attempts() []kds.Peer {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]kds.Peer(nil), h.peers...)
}

// A zone the global refuses as a duplicate keeps retrying at most every
// DuplicateBackoff (x1.5), however long its usual backoff: it takes over
// soon after the other process is gone. It gets no Hello, so it never
// says it is connected, and shows the global's reason as its last error.
// Each attempt presents the same instance id and its address.
func TestClientRefusedAsDuplicateRetriesWithinTheDuplicateBackoff(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &refusingHandler{}
	srv := kds.NewServer(kds.ServerConfig{Handler: h, InstanceID: "global-1", Log: quiet})
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	v1alpha1.RegisterKDSServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	defer gs.Stop()

	client := kds.NewClient(kds.ClientConfig{
		Address: ln.Addr().String(), Zone: "zone-1", Log: quiet,
		// Without the cap the second attempt would come in an hour.
		MinBackoff: time.Hour, MaxBackoff: time.Hour, DuplicateBackoff: time.Millisecond,
	}, newEndpoint())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, func() error {
		if n := len(h.attempts()); n < 3 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
	st := client.Status()
	if st.Connected || !strings.Contains(st.LastError, "zone zone-1 is already connected from 127.0.0.1:1") {
		t.Errorf("status of the refused zone: connected %t, last error %q", st.Connected, st.LastError)
	}
	peers := h.attempts()
	if peers[0].Instance == "" || !strings.HasPrefix(peers[0].Addr, "127.0.0.1:") {
		t.Errorf("the global saw the zone as %+v, want its instance id and address", peers[0])
	}
	for _, p := range peers[1:] {
		if p.Instance != peers[0].Instance {
			t.Errorf("instance ids %q and %q: one process must keep one id", peers[0].Instance, p.Instance)
		}
	}
}
