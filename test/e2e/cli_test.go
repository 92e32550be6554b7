package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAtollctl(t *testing.T) {
	z := startZone(t, "zone-2", t.TempDir())
	api := []string{"--api-url", z.apiURL}
	ctl := func(stdin string, args ...string) (string, string, error) {
		return atollctl(t, stdin, append(args, api...)...)
	}

	out, errOut, err := ctl("", "apply", "-f", "../sample/zone-2.yaml")
	if err != nil {
		t.Fatalf("apply sample: %v\n%s", err, errOut)
	}
	if strings.Count(out, "created") != 3 {
		t.Errorf("apply output: %q, want three created", out)
	}

	out, _, err = ctl("", "get", "dataplanes")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "MESH") || !strings.Contains(lines[1], "backend-1") || !strings.Contains(lines[1], "backend:9001") || !strings.Contains(lines[1], "zone-2") {
		t.Errorf("table:\n%s", out)
	}

	out, _, err = ctl("", "get", "dataplanes", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Total int `json:"total"`
	}
	if json.Unmarshal([]byte(out), &list) != nil || list.Total != 3 {
		t.Errorf("-o json: %s", out)
	}

	// YAML output applies back unchanged.
	yamlOut, _, err := ctl("", "get", "dataplanes", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, err = ctl(yamlOut, "apply", "-f", "-"); err != nil || strings.Count(out, "unchanged") != 3 {
		t.Errorf("re-applying -o yaml: %v %q %q", err, out, errOut)
	}

	// A malformed file applies nothing, even its valid documents.
	bad := "type: Dataplane\nmesh: default\nname: new-1\nnetworking: {address: 10.0.0.1, inbound: [{port: 1, tags: {atoll.io/service: a}}]}\n---\n: [\n"
	if _, errOut, err = ctl(bad, "apply", "-f", "-"); err == nil || !strings.Contains(errOut, "stdin:6: not valid YAML") {
		t.Errorf("malformed input: err %v, stderr %q; want a failure at line 6 of stdin", err, errOut)
	}
	if _, _, err = ctl("", "get", "dataplane", "new-1"); err == nil {
		t.Error("a document of a malformed file was applied")
	}

	// An invalid resource fails with the field, others still apply.
	mixed := "type: Dataplane\nname: ok-1\nnetworking: {address: 10.0.0.1, inbound: [{port: 1, tags: {atoll.io/service: a}}]}\n---\ntype: Dataplane\nname: bad-1\nnetworking: {address: 10.0.0.1, inbound: [{port: 0, tags: {atoll.io/service: a}}]}\n"
	out, errOut, err = ctl(mixed, "apply", "-f", "-")
	if err == nil || !strings.Contains(errOut, "networking.inbound[0].port") || !strings.Contains(out, "ok-1") {
		t.Errorf("mixed input: err %v, stdout %q, stderr %q", err, out, errOut)
	}

	if out, _, err = ctl("", "delete", "dataplane", "backend-3", "--mesh", "default"); err != nil || !strings.Contains(out, "deleted") {
		t.Errorf("delete: %v %q", err, out)
	}
	if _, errOut, err = ctl("", "get", "dataplane", "backend-3"); err == nil || !strings.Contains(errOut, "not found") {
		t.Errorf("get deleted: %v %q", err, errOut)
	}
	if _, errOut, err = ctl("", "get", "widgets"); err == nil || !strings.Contains(errOut, "dataplanes") {
		t.Errorf("unknown type: %v %q, want the list of types", err, errOut)
	}
	if _, errOut, err = atollctl(t, "", "get", "meshes", "--api-url", "http://127.0.0.1:1"); err == nil || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("unreachable API: %v %q", err, errOut)
	}
}

func TestConfiguration(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "zone.yaml")
	if err := os.WriteFile(cfgFile, []byte("zone: zone-7\nlog: {level: debug}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// File, then environment, then flags.
	out, err := runAtoll(t, []string{"ATOLL_API_ADDR=127.0.0.1:7001", "ATOLL_DATA_DIR=/tmp/from-env"},
		"zone", "--config", cfgFile, "--data-dir", "/tmp/from-flag", "--print-config")
	if err != nil {
		t.Fatalf("--print-config: %v\n%s", err, out)
	}
	for _, want := range []string{"zone: zone-7", "level: debug", "apiAddr: 127.0.0.1:7001", "dataDir: /tmp/from-flag"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}

	bad := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"zone name", nil, []string{"zone", "--zone", "Zone_1"}, "zone:"},
		{"kubernetes mode outside a pod", nil, []string{"zone", "--zone", "z", "--mode", "kubernetes", "--data-dir", t.TempDir()}, "not running in a pod"},
		{"kubeconfig missing", nil, []string{"zone", "--zone", "z", "--mode", "kubernetes", "--data-dir", t.TempDir(), "--kubeconfig", "/nonexistent/kubeconfig"}, "kubernetes.kubeconfig: /nonexistent/kubeconfig"},
		{"kubernetes burst below qps", nil, []string{"zone", "--zone", "z", "--mode", "kubernetes", "--kube-api-qps", "50", "--kube-api-burst", "10"}, "kubernetes.burst"},
		{"api address", nil, []string{"zone", "--zone", "z", "--api-addr", "nowhere"}, "apiAddr"},
		{"global address", []string{"ATOLL_GLOBAL_ADDRESS=ftp://x:1"}, []string{"zone", "--zone", "z"}, "globalAddress"},
		{"etcd endpoint", nil, []string{"global", "--etcd-endpoints", "nope"}, "etcd.endpoints[0]"},
		{"duration", nil, []string{"global", "--etcd-dial-timeout", "soon"}, "etcd-dial-timeout"},
		{"unknown setting in file", nil, []string{"zone", "--config", writeFile(t, "zome: z\n")}, "zome"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			out, err := runAtoll(t, c.env, c.args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("err %v, output %q; want a failure naming %q", err, out, c.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
