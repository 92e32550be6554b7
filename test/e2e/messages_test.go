package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApplyUnchangedAndRoundTrip applies files against a synced zone and
// its global as a user would: apply says unchanged when nothing changed
// (and the version stays), get -o yaml applies back unchanged, for a
// zone's Dataplanes and for the global's zones, and the status APIs use
// camelCase keys.
func TestApplyUnchangedAndRoundTrip(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	on := func(p *process) func(stdin string, args ...string) (string, string, error) {
		return func(stdin string, args ...string) (string, string, error) {
			return atollctl(t, stdin, append([]string{"--api-url", p.apiURL}, args...)...)
		}
	}
	zctl, gctl := on(z), on(g)

	file := filepath.Join(t.TempDir(), "kong.yaml")
	kong := "type: Dataplane\nmesh: default\nname: kong\nnetworking:\n  address: 127.0.0.1\n  gateway: {type: DELEGATED, tags: {atoll.io/service: kong}}\n"
	if err := os.WriteFile(file, []byte(kong), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Dataplane kong (mesh default) created\n", "Dataplane kong (mesh default) unchanged\n"} {
		if out, errOut, err := zctl("", "apply", "-f", file); err != nil || out != want {
			t.Fatalf("apply -f %s: %v, stdout %q, stderr %q; want %q", file, err, out, errOut, want)
		}
	}
	version := func() string {
		t.Helper()
		status, body := call(t, "GET", z.apiURL+"/meshes/default/dataplanes/kong", "")
		if status != 200 {
			t.Fatalf("GET kong: %d %s", status, body)
		}
		return decodeMeta(t, body).Version
	}
	v := version()
	yamlOut, errOut, err := zctl("", "get", "dataplane", "kong", "-o", "yaml")
	if err != nil {
		t.Fatalf("get -o yaml: %v %s", err, errOut)
	}
	if out, errOut, err := zctl(yamlOut, "apply", "-f", "-"); err != nil || out != "Dataplane kong (mesh default) unchanged\n" {
		t.Errorf("get -o yaml | apply -f -: %v, stdout %q, stderr %q; want unchanged\n%s", err, out, errOut, yamlOut)
	}
	if got := version(); got != v {
		t.Errorf("version after unchanged applies: %s, want %s", got, v)
	}

	// The global's zones: get zone -o yaml is a Zone resource (its state
	// under status) that applies back unchanged.
	waitFor(t, 30*time.Second, "zone-1 online at the global", func() error {
		if _, body := call(t, "GET", g.apiURL+"/zones/zone-1", ""); !strings.Contains(body, `"online":true`) {
			return fmt.Errorf("not online: %s", body)
		}
		return nil
	})
	zoneYAML, errOut, err := gctl("", "get", "zone", "zone-1", "-o", "yaml")
	if err != nil || !strings.HasPrefix(zoneYAML, "type: Zone\nname: zone-1\nstatus:\n  online: true\n") {
		t.Fatalf("get zone -o yaml: %v %s\n%s", err, errOut, zoneYAML)
	}
	steps := []struct{ in, want string }{
		{zoneYAML, "Zone zone-1 unchanged\n"},
		{"type: Zone\nname: zone-1\nenabled: false\n", "Zone zone-1 updated\n"},
		{"", "Zone zone-1 unchanged\n"}, // the disabled zone's get -o yaml
		{"type: Zone\nname: zone-1\nenabled: true\n", "Zone zone-1 updated\n"},
		{"", "Zone zone-1 unchanged\n"}, // the enabled zone's get -o yaml
	}
	for i, s := range steps {
		in := s.in
		if in == "" {
			if in, errOut, err = gctl("", "get", "zone", "zone-1", "-o", "yaml"); err != nil {
				t.Fatalf("step %d: get zone -o yaml: %v %s", i, err, errOut)
			}
		}
		if out, errOut, err := gctl(in, "apply", "-f", "-"); err != nil || out != s.want {
			t.Errorf("step %d: apply\n%s: %v, stdout %q, stderr %q; want %q", i, in, err, out, errOut, s.want)
		}
	}

	// The global's meshes, and all its zones at once.
	for _, kind := range []string{"meshes", "zones"} {
		out, errOut, err := gctl("", "get", kind, "-o", "yaml")
		if err != nil {
			t.Fatalf("get %s -o yaml: %v %s", kind, err, errOut)
		}
		want := map[string]string{"meshes": "Mesh default unchanged\n", "zones": "Zone zone-1 unchanged\n"}[kind]
		if got, errOut, err := gctl(out, "apply", "-f", "-"); err != nil || got != want {
			t.Errorf("get %s -o yaml | apply -f -: %v, stdout %q, stderr %q; want %q\n%s", kind, err, got, errOut, want, out)
		}
	}

	// camelCase keys in the zone's and the global's status.
	waitFor(t, 30*time.Second, "zone-1's session stats", func() error {
		if _, body := call(t, "GET", z.apiURL+"/zone", ""); !strings.Contains(body, `"sent":`) {
			return fmt.Errorf("no stats yet: %s", body)
		}
		return nil
	})
	_, zoneBody := call(t, "GET", z.apiURL+"/zone", "")
	_, zonesBody := call(t, "GET", g.apiURL+"/zones", "")
	for name, body := range map[string]string{"GET /zone": zoneBody, "GET /zones": zonesBody} {
		for _, bad := range []string{`"Sent"`, `"Acked"`, `"LastAckedNonce"`, `"Subscribed"`, `"last_acked_version"`} {
			if strings.Contains(body, bad) {
				t.Errorf("%s has the key %s: %s", name, bad, body)
			}
		}
	}
	if !strings.Contains(zoneBody, `"acked":`) || !strings.Contains(zoneBody, `"subscribed":true`) {
		t.Errorf("GET /zone lacks camelCase stats: %s", zoneBody)
	}
}

// TestMessagesNameWhatWasTyped checks the messages of mistakes in files
// and arguments, exactly as a user reads them.
func TestMessagesNameWhatWasTyped(t *testing.T) {
	z := startZone(t, "zone-1", t.TempDir())
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dp := "type: Dataplane\nmesh: default\nname: kong\n"
	typo := write("dataplane.yaml", dp+"networking:\n  adress: 127.0.0.1\n")
	indent := write("indent.yaml", dp+"networking:\n  address: 127.0.0.1\n  inbound:\n  - port: 9001\n   tags: {atoll.io/service: kong}\n")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown field", []string{"apply", "-f", typo},
			"atollctl: " + typo + `:5: networking.adress: unknown field; did you mean "address"?` + "\n"},
		{"indentation", []string{"apply", "-f", indent},
			"atollctl: " + indent + ":8: not valid YAML: did not find expected key (check this line's indentation against the lines above it)\n"},
		{"missing name", []string{"delete", "dataplane"},
			"atollctl: missing the Dataplane's name: atollctl delete dataplane NAME [--mesh MESH]\n"},
		{"file without -f", []string{"apply", typo},
			"atollctl: unexpected argument \"" + typo + "\": give files with -f: atollctl apply -f FILE (or -f - for standard input)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := atollctl(t, "", append([]string{"--api-url", z.apiURL}, tt.args...)...)
			if err == nil || errOut != tt.want {
				t.Errorf("atollctl %v: %v, stdout %q\n got stderr %q\nwant stderr %q", tt.args, err, out, errOut, tt.want)
			}
		})
	}
	// Nothing of the bad files was applied.
	if status, body := call(t, "GET", z.apiURL+"/meshes/default/dataplanes/kong", ""); status != 404 {
		t.Errorf("kong after bad applies: %d %s, want 404", status, body)
	}

	cfg := write("zone.yaml", "zone: zone-2\ndns:\n  adr: 127.0.0.1:0\n")
	out, err := runAtoll(t, nil, "zone", "--config", cfg, "--data-dir", t.TempDir())
	want := "atoll: " + cfg + `:3: dns.adr: unknown field; did you mean "addr"? (run with --print-config to see every setting)` + "\n"
	if err == nil || out != want {
		t.Errorf("atoll zone --config with a typo: %v\n got %q\nwant %q", err, out, want)
	}
}
