package chart

import (
	"crypto/tls"
	"slices"
	"testing"
	"time"
)

// TestRenderedGlobalRuns plays the kubelet for the rendered global's pod:
// cmd/atoll with the StatefulSet's arguments (the data volume a directory)
// becomes ready, and the KDS certificate it generates covers the KDS
// Service's in-cluster name and global.kds.tlsSANs, the names zones use.
// The embedded etcd's listeners are moved off their fixed default ports
// with extraArgs-style flags the test appends.
func TestRenderedGlobalRuns(t *testing.T) {
	ports := freePorts(t, 4)
	objs := variant{name: "global-run", mode: "global", set: []string{
		"api.tls=insecure",
		"api.port=" + ports[0],
		"global.kds.port=" + ports[1],
	}}.objects(t)
	global, args := runPod(t, objs, "StatefulSet", []string{
		"--etcd-client-addr=127.0.0.1:" + ports[2],
		"--etcd-peer-addr=127.0.0.1:" + ports[3],
	}, nil)

	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for last := ""; ; {
		select {
		case <-global.Exited:
			t.Fatalf("the global exited (%v) with the chart's arguments %q:\n%s", global.Err, args, Tail(global.LogPath))
		case <-deadline:
			t.Fatalf("the global did not become ready (last: %s):\n%s", last, Tail(global.LogPath))
		case <-tick.C:
		}
		ready, body := get("http://127.0.0.1:" + ports[0] + "/readyz")
		if ready {
			break
		}
		last = body
	}

	conn, err := tls.Dial("tcp", "127.0.0.1:"+ports[1], &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("KDS does not serve TLS: %v", err)
	}
	defer conn.Close()
	names := conn.ConnectionState().PeerCertificates[0].DNSNames
	for _, want := range []string{"atoll-kds.atoll-system.svc", "global.example.com"} {
		if !slices.Contains(names, want) {
			t.Errorf("the KDS certificate covers %q, not %q", names, want)
		}
	}
}
