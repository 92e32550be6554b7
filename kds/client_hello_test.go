package kds_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/kds"
)

// countingHandler is a global's ZoneHandler counting sessions.
type countingHandler struct {
	mu       sync.Mutex
	started  int
	features [][]string // each Hello's
}

func (h *countingHandler) Connect(_ context.Context, _ string, hello *v1alpha1.Hello) (kds.Endpoint, error) {
	h.mu.Lock()
	h.features = append(h.features, hello.GetFeatures())
	h.mu.Unlock()
	return newEndpoint(), nil
}

func (h *countingHandler) Claim(string, kds.Peer, *kds.Session, context.CancelFunc) error {
	return nil
}

func (h *countingHandler) Started(string, *kds.Session) {
	h.mu.Lock()
	h.started++
	h.mu.Unlock()
}

func (h *countingHandler) Ended(string, *kds.Session, error) {}

func (h *countingHandler) sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// The client shows the global's Hello to OnHello before a session starts
// (an error refuses that session) and Reconnect starts a new session.
func TestClientOnHelloAndReconnect(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &countingHandler{}
	srv := kds.NewServer(kds.ServerConfig{Handler: h, InstanceID: "global-1", ClusterID: "cluster-a", Log: quiet})
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	v1alpha1.RegisterKDSServer(gs, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	defer gs.Stop()

	var mu sync.Mutex
	var seen []string
	client := kds.NewClient(kds.ClientConfig{
		Address: ln.Addr().String(), Zone: "zone-1", InstanceID: "zone-1-a", Log: quiet,
		Features: []string{kds.FeaturePerServiceRecords},
		OnHello: func(h *v1alpha1.Hello) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, h.GetClusterId())
			if len(seen) == 1 {
				return errors.New("not this time")
			}
			return nil
		},
	}, newEndpoint())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, func() error {
		if !client.Status().Connected {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	mu.Lock()
	if len(seen) != 2 || seen[0] != "cluster-a" || seen[1] != "cluster-a" {
		t.Errorf("OnHello saw %v, want the global's cluster identity twice (the first refused)", seen)
	}
	mu.Unlock()
	if last := client.Status().LastError; last != "not this time" {
		t.Errorf("last error = %q, want OnHello's", last)
	}

	// The global starts a session for the refused attempt too (the zone
	// closes it at once): two so far.
	eventually(t, func() error {
		if n := h.sessions(); n != 2 {
			return fmt.Errorf("%d sessions at the global, want 2", n)
		}
		return nil
	})
	// Every Hello names the zone's features, which the global reads to
	// serve an older zone in the form it knows.
	h.mu.Lock()
	for _, f := range h.features {
		if len(f) != 1 || f[0] != kds.FeaturePerServiceRecords {
			t.Errorf("the global read features %v from a Hello, want [%s]", f, kds.FeaturePerServiceRecords)
		}
	}
	h.mu.Unlock()
	client.Reconnect()
	eventually(t, func() error {
		if n := h.sessions(); n != 3 || !client.Status().Connected {
			return fmt.Errorf("%d sessions at the global after Reconnect, want 3; connected %t", n, client.Status().Connected)
		}
		return nil
	})
}
