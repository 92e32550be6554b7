// Package etcdtest starts a real, embedded etcd for tests.
package etcdtest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/atoll-mesh/atoll/internal/embedetcd"
)

// Start runs an etcd with data in dir (a fresh temp dir when empty) on free
// loopback ports, and returns a client for it. Both stop when the test ends.
func Start(t testing.TB, dir string) (*embedetcd.Server, *clientv3.Client) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	srv, err := embedetcd.Start(context.Background(), embedetcd.Config{
		DataDir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("starting embedded etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{srv.ClientEndpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return srv, client
}
