package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-mesh/atoll/zone/xds"
)

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args        []string
		path, level string
	}{
		{[]string{"-c", "/run/envoy.json", "--log-level", "debug", "--drain-time-s", "5", "--disable-hot-restart"}, "/run/envoy.json", "debug"},
		{[]string{"--config-path=/run/envoy.json", "-l", "warning"}, "/run/envoy.json", "warning"},
		{[]string{"--drain-strategy", "immediate", "-c", "/b.json"}, "/b.json", "info"},
	} {
		path, level, err := parseArgs(c.args)
		if err != nil || path != c.path || level != c.level {
			t.Errorf("%v: %q %q %v, want %q %q", c.args, path, level, err, c.path, c.level)
		}
	}
	for _, args := range [][]string{nil, {"--log-level", "info"}, {"-c"}} {
		if _, _, err := parseArgs(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// The stand-in reads what atoll sidecar writes: the relay's socket.
func TestReadsTheSidecarBootstrap(t *testing.T) {
	b, err := xds.SidecarBootstrap("default.kong-abc", "default", "/run/atoll/xds.sock", 9901)
	if err != nil {
		t.Fatal(err)
	}
	js, err := xds.EnvoyBootstrapJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy.json")
	if err := os.WriteFile(path, js, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := readBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}
	target, err := xdsTarget(back)
	if err != nil || target != "unix:///run/atoll/xds.sock" || back.GetNode().GetId() != "default.kong-abc" {
		t.Errorf("target %q (%v), node %v", target, err, back.GetNode())
	}
	if xdsCluster != xds.XDSClusterName {
		t.Errorf("the stand-in looks for cluster %q, the bootstraps name %q", xdsCluster, xds.XDSClusterName)
	}
}
