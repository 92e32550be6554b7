// Package embedetcd runs a single-node etcd inside the process: the global
// control plane's default store, and the real etcd that tests use.
package embedetcd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config places the embedded etcd.
type Config struct {
	// DataDir holds etcd's data; it survives restarts.
	DataDir string
	// ClientAddr and PeerAddr are host:port listeners; port 0 picks a free one.
	ClientAddr string
	PeerAddr   string
	// StartTimeout bounds how long Start waits for etcd to be ready.
	StartTimeout time.Duration
}

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	logLevel  zap.AtomicLevel
	closeOnce sync.Once
}

// Start starts etcd and waits until it serves clients.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	clientURL, err := listenURL(cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("etcd client address: %w", err)
	}
	peerURL, err := listenURL(cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("etcd peer address: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = "atoll"
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// etcd logs through zap; keep errors only, and silence them while
	// stopping, when closed listeners are expected.
	level := zap.NewAtomicLevelAt(zap.ErrorLevel)
	zcfg := zap.NewProductionConfig()
	zcfg.Level = level
	zcfg.Sampling = nil
	zl, err := zcfg.Build()
	if err != nil {
		return nil, fmt.Errorf("etcd logger: %w", err)
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	// A single node needs no metrics listener or v2 API; keep it lean.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", cfg.DataDir, err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s was not ready after %s", cfg.DataDir, timeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	log.Info("embedded etcd ready", "client", e.Clients[0].Addr().String(), "dataDir", cfg.DataDir)
	return &Server{etcd: e, logLevel: level}, nil
}

func listenURL(addr string) (*url.URL, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return &url.URL{Scheme: "http", Host: addr}, nil
}

// ClientEndpoint is the address clients dial, with the real port when the
// configured one was 0.
func (s *Server) ClientEndpoint() string {
	return "http://" + s.etcd.Clients[0].Addr().String()
}

// Err reports a fatal error of the running server.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops etcd gracefully.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.logLevel.SetLevel(zap.FatalLevel)
		s.etcd.Close()
	})
}
