package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

func TestZoneRestartKeepsDataplanes(t *testing.T) {
	dir := t.TempDir()
	z := startZone(t, "zone-1", dir)
	status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON)
	if status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", status, body)
	}
	version := decodeMeta(t, body).Version
	z.stop()

	z = startZone(t, "zone-1", dir)
	status, body = call(t, "GET", z.apiURL+"/meshes/default/dataplanes/backend-1", "")
	if status != 200 || decodeMeta(t, body).Version != version {
		t.Fatalf("after restart: %d %s, want backend-1 at version %s", status, body, version)
	}
	z.stop()

	// Another zone must not start on zone-1's state.
	out, err := runAtoll(t, nil, "zone", "--zone", "zone-2", "--data-dir", dir, "--api-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, `zone "zone-1"`) {
		t.Fatalf("zone-2 on zone-1's data dir: err %v, output %s; want a refusal naming zone-1", err, out)
	}
}

func TestGlobalRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	g := startGlobal(t, dir)
	if status, body := call(t, "PUT", g.apiURL+"/meshes/payments", `{"type":"Mesh"}`); status != http.StatusCreated {
		t.Fatalf("PUT mesh: %d %s", status, body)
	}
	g.stop()
	g = startGlobal(t, dir)
	if status, body := call(t, "GET", g.apiURL+"/meshes/payments", ""); status != 200 {
		t.Fatalf("mesh after restart: %d %s", status, body)
	}
}

func TestGlobalOnExternalEtcd(t *testing.T) {
	srv, client := etcdtest.Start(t, "")
	g := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint(), "--etcd-prefix", "/prod/", "--etcd-dial-timeout", "1s")
	if status, body := call(t, "PUT", g.apiURL+"/meshes/payments", `{"type":"Mesh"}`); status != http.StatusCreated {
		t.Fatalf("PUT mesh: %d %s", status, body)
	}
	resp, err := client.Get(context.Background(), "/prod/resources/Mesh//payments")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the mesh is not in the external etcd under the prefix: %v %v", resp, err)
	}

	// Readiness follows etcd: not ready while it is gone.
	srv.Close()
	waitFor(t, 30*time.Second, "readyz to report etcd down", func() error {
		status, body := call(t, "GET", g.apiURL+"/readyz", "")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "etcd") {
			return &unexpected{status, body}
		}
		return nil
	})
	if status, _ := call(t, "GET", g.apiURL+"/healthz", ""); status != 200 {
		t.Errorf("healthz %d while etcd is down: the process itself is alive", status)
	}
}

func TestGlobalRefusesUnreachableEtcd(t *testing.T) {
	out, err := runAtoll(t, nil, "global", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0",
		"--etcd-endpoints", "http://127.0.0.1:1", "--etcd-dial-timeout", "1s")
	if err == nil || !strings.Contains(out, "cannot reach etcd") {
		t.Fatalf("err %v, output %s; want a start failure naming etcd", err, out)
	}
}

type unexpected struct {
	status int
	body   string
}

func (u *unexpected) Error() string { return http.StatusText(u.status) + ": " + u.body }
