package sidecar

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Envoy's admin stand-in on loopback: /ready answers as Envoy's does,
// 503 PRE_INITIALIZING until ready, then 200 LIVE.
func TestProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		select {
		case <-ready:
			w.Write([]byte("LIVE\n"))
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("PRE_INITIALIZING\n"))
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := Probe(ctx, port); err == nil || !strings.Contains(err.Error(), "not ready yet") || !strings.Contains(err.Error(), "PRE_INITIALIZING") {
		t.Errorf("Probe before ready = %v, want not ready, with Envoy's state", err)
	}
	close(ready)
	if err := Probe(ctx, port); err != nil {
		t.Errorf("Probe when ready = %v", err)
	}
	srv.Close()
	if err := Probe(ctx, port); err == nil || !strings.Contains(err.Error(), "not answering") {
		t.Errorf("Probe with no Envoy = %v, want not answering", err)
	}
	if err := Probe(ctx, 0); err == nil || !strings.Contains(err.Error(), "--admin-port 0") {
		t.Errorf("Probe(0) = %v, want the port named", err)
	}
}
