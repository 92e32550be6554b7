package main

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpc-go's ways of saying an xDS target has no endpoint read as one line
// naming the service and the zone; other failures keep their words.
func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.Unavailable, "no priority is provided, all priorities are removed"),
			"no endpoints for backend.mesh in zone-1 (grpc: no priority is provided, all priorities are removed)"},
		{status.Error(codes.Unavailable, `xds: resource "backend.mesh:9001" of type Listener does not exist`),
			`no endpoints for backend.mesh in zone-1 (grpc: xds: resource "backend.mesh:9001" of type Listener does not exist)`},
		{status.Error(codes.Unavailable, "no matched route was found"),
			"no endpoints for backend.mesh in zone-1 (grpc: no matched route was found)"},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.2:9001: connect: connection refused\""),
			"Unavailable: connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.2:9001: connect: connection refused\""},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), "DeadlineExceeded: context deadline exceeded"},
		{errors.New("plain"), "Unknown: plain"},
	} {
		if got := explain(tc.err, "backend.mesh", "zone-1"); got != tc.want {
			t.Errorf("explain(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestServiceOf(t *testing.T) {
	for target, want := range map[string]string{
		"xds:///backend.mesh:9001": "backend.mesh",
		"xds:///backend.mesh":      "backend.mesh",
		"xds:///[::1]:9001":        "[::1]",
	} {
		if got := serviceOf(target); got != want {
			t.Errorf("serviceOf(%q) = %q, want %q", target, got, want)
		}
	}
}
