package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// waitOutput runs atollctl with args until its output matches every
// pattern (multi-line mode), and returns that output.
func waitOutput(t *testing.T, what string, patterns []string, args ...string) string {
	t.Helper()
	var res []*regexp.Regexp
	for _, p := range patterns {
		res = append(res, regexp.MustCompile("(?m)"+p))
	}
	var out string
	waitFor(t, syncWait, what, func() error {
		o, errOut, err := atollctl(t, "", args...)
		if err != nil {
			return fmt.Errorf("atollctl %s: %v %q", strings.Join(args, " "), err, errOut)
		}
		for _, re := range res {
			if !re.MatchString(o) {
				return fmt.Errorf("atollctl %s printed no line matching %s:\n%s", strings.Join(args, " "), re, o)
			}
		}
		out = o
		return nil
	})
	return out
}

// What an operator reads from atollctl about a gRPC gateway in zone-1
// reaching backend in zone-2 (crossZone Direct): its route table, the
// services zone-1 reaches and how, whether kong's proxy is connected, the
// mesh's mode, and zone-2's status going Online → Disabled → Offline.
func TestAtollctlReadableOutput(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	if status, body := call(t, "PUT", g.apiURL+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	z2dir := t.TempDir()
	z2 := startSyncedZone(t, "zone-2", z2dir, g.kdsAddr, g.caFile())
	if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/kong", kongJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	backends, port := startBackends(t, []string{"b1", "b2", "local-1"}, []string{"127.0.0.2", "127.0.0.3", "127.0.0.5"})
	register := func(z *process, b *backendServer) {
		t.Helper()
		host, _, _ := net.SplitHostPort(b.addr)
		if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+b.name, dataplaneJSON(b.name, host, port)); status != 201 {
			t.Fatalf("%d %s", status, body)
		}
	}
	register(z2, backends[0])
	register(z2, backends[1])

	// Before kong's client connects, inspect says so and shows what an
	// Envoy would get.
	waitOutput(t, "kong's route table before it connects", []string{
		`^Proxy:      delegated gateway \(Envoy\)$`,
		`^Connection: not connected to this zone: the routes below are what the proxy gets once it connects$`,
		`^LISTENER\s+CLUSTER\s+ENDPOINT\s+ZONE\s+PRIORITY\s+WEIGHT\s+HEALTH$`,
	}, "--api-url", z1.apiURL, "inspect", "dataplane", "kong")

	bootstrap, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "bootstrap", "dataplane", "kong", "--kind", "proxyless")
	if err != nil {
		t.Fatalf("atollctl bootstrap dataplane kong --kind proxyless: %v %q", err, errOut)
	}
	client := xdsClientFromBootstrap(t, []byte(bootstrap), "xds:///backend.mesh:"+port)
	waitReached(t, client, "zone-2's backends", "b1", "b2")

	// The route table: the name kong's client resolves → backend's
	// cluster → zone-2's two instances, directly, at priority 0 (no local
	// instance), after a header with the proxy's kind and sync state.
	p := regexp.QuoteMeta(port)
	waitOutput(t, "kong's route table to zone-2", []string{
		`^Dataplane:  kong \(mesh default, zone zone-1\)$`,
		`^Proxy:      proxyless gRPC \(a gateway Dataplane\)$`,
		`^Connection: connected for \S+ \(node default\.kong, 1 stream\)$`,
		`^Sync:       in sync: the proxy ACKed the latest version of every type$`,
		`^            Listener\s+ACKed \S+ \(latest\)$`,
		`^NAME\s+CLUSTER\s+ENDPOINT\s+ZONE\s+PRIORITY\s+WEIGHT\s+HEALTH$`,
		`^xds:///backend\.mesh:` + p + `\s+\S+\s+127\.0\.0\.2:` + p + `\s+zone-2\s+0\s+1\s+healthy\n\s+127\.0\.0\.3:` + p + `\s+zone-2\s+0\s+1\s+healthy$`,
	}, "--api-url", z1.apiURL, "inspect", "dataplane", "kong")

	// A local instance comes first: priority 0, zone-2's move to 1.
	register(z1, backends[2])
	waitReached(t, client, "the local instance", "local-1")
	waitOutput(t, "kong's route table with a local instance", []string{
		`^xds:///backend\.mesh:` + p + `\s+\S+\s+127\.0\.0\.5:` + p + `\s+zone-1 \(local\)\s+0\s+1\s+healthy\n\s+127\.0\.0\.2:` + p + `\s+zone-2\s+1\s+1\s+healthy\n\s+127\.0\.0\.3:` + p + `\s+zone-2\s+1\s+1\s+healthy$`,
	}, "--api-url", z1.apiURL, "inspect", "dataplane", "kong")

	// Zone-1 reaches backend locally and in zone-2 directly; kong's proxy
	// is connected, local-1's is not; the mesh is Direct.
	waitOutput(t, "backend reachable from zone-1", []string{
		`^SERVICE\s+INSTANCES\s+ZONES\s+REACHABLE\s+HOW$`,
		`^backend\s+3\s+zone-1 \(1\), zone-2 \(2\)\s+yes\s+zone-1: local; zone-2: direct$`,
	}, "--api-url", z1.apiURL, "get", "services")
	waitOutput(t, "kong's proxy connected", []string{
		`^MESH\s+NAME\s+ZONE\s+ADDRESS\s+KIND\s+SERVICES\s+AGE\s+PROXY$`,
		`^default\s+kong\s+zone-1\s+127\.0\.0\.1\s+gateway \(delegated\)\s+kong\s+\S+\s+connected, proxyless-grpc, in sync$`,
		`^default\s+local-1\s+zone-1\s+127\.0\.0\.5\s+standard\s+backend:` + p + `\s+\S+\s+not connected$`,
	}, "--api-url", z1.apiURL, "get", "dataplanes")
	waitOutput(t, "the mesh's cross-zone mode", []string{`^NAME\s+CROSS-ZONE\s+AGE$`, `^default\s+Direct\s+\S+$`},
		"--api-url", g.apiURL, "get", "meshes")

	// Zone-2's ingress offers backend to the other zones by SNI; its
	// configuration as JSON leaves the private key out.
	waitOutput(t, "zone-2's ingress", []string{
		`^Ingress:    zone zone-2$`,
		`^Connection: not connected to this zone: `,
		`^ingress \(\S+\) SNI backend\.` + p + `\.default\s+default/backend:` + p + `\s+127\.0\.0\.2:` + p + `\s+zone-2 \(local\)\s+0\s+1\s+healthy\n\s+127\.0\.0\.3:` + p + `\s+zone-2 \(local\)\s+0\s+1\s+healthy$`,
	}, "--api-url", z2.apiURL, "inspect", "ingress", "zone-2")
	key, err := os.ReadFile(filepath.Join(z2dir, "ingress-tls", "kds-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := atollctl(t, "", "--api-url", z2.apiURL, "inspect", "ingress", "zone-2", "-o", "json")
	if err != nil || !strings.Contains(out, "left out: the ingress's private key") || strings.Contains(out, base64.StdEncoding.EncodeToString(key)) {
		t.Errorf("atollctl inspect ingress zone-2 -o json: %v %q, want the configuration without the private key:\n%s", err, errOut, out)
	}

	// Zone-2: Online while connected, Disabled once disabled (its
	// endpoints leave kong's table), Offline once stopped and enabled.
	waitOutput(t, "zone-2 online", []string{
		`^ZONE\s+STATUS\s+DATAPLANES\s+SYNC LAG\s+LAST MESSAGE$`,
		`^zone-2\s+Online\s+2\s+\S+\s+\S+ ago$`,
	}, "--api-url", g.apiURL, "get", "zones")
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":false}`); status != 200 {
		t.Fatalf("disable zone-2: %d %s", status, body)
	}
	waitOutput(t, "zone-2 disabled", []string{`^zone-2\s+Disabled\s+\d+\s+`}, "--api-url", g.apiURL, "get", "zones")
	waitOutput(t, "zone-2's endpoints gone from kong's table", []string{
		`^xds:///backend\.mesh:` + p + `\s+\S+\s+127\.0\.0\.5:` + p + `\s+zone-1 \(local\)\s+0\s+1\s+healthy\n(\S|\z)`,
	}, "--api-url", z1.apiURL, "inspect", "dataplane", "kong")
	z2.stop()
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":true}`); status != 200 {
		t.Fatalf("enable zone-2: %d %s", status, body)
	}
	waitOutput(t, "zone-2 offline", []string{`^zone-2\s+Offline\s+\d+\s+-\s+\S+ ago$`, `^zone-1\s+Online\s+`},
		"--api-url", g.apiURL, "get", "zones")
}
