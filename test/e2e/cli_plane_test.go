package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// atollctlEnv runs bin/atollctl with env added to a copy of this process's
// environment from which every ATOLL_API_* and ATOLLCTL_* variable is
// removed, and returns stdout, stderr and the exit error.
func atollctlEnv(t *testing.T, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "atollctl"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ATOLL_API_") && !strings.HasPrefix(kv, "ATOLLCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// A command meant for the other control plane fails, saying which plane
// serves it and what to run instead; commands both serve work on both.
func TestAtollctlWrongPlane(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	waitFor(t, 30*time.Second, "zone-1 online on the global", func() error {
		out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "get", "zones")
		if err != nil || !strings.Contains(out, "zone-1") {
			return &cliError{out, errOut, err}
		}
		return nil
	})

	// Both planes say what they are, to callers without the token too.
	for _, c := range []struct {
		p    *process
		want string
	}{{g, `{"kind":"global",`}, {z, `{"kind":"zone","zone":"zone-1",`}} {
		req, _ := http.NewRequest("GET", c.p.apiURL+"/identity", nil)
		req.Host = "atoll.example" // not a loopback name: only open paths answer
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body.String(), c.want) || !strings.Contains(body.String(), `"version":`) {
			t.Errorf("GET %s/identity: %d %s, want 200 starting %s", c.p.apiURL, resp.StatusCode, body.String(), c.want)
		}
	}

	toGlobal := "; " + z.apiURL + " is zone zone-1; try --api-url http://127.0.0.1:5681 (zone zone-1 syncs with the global at grpcs://" + g.kdsAddr + "; 5681 is the global's default API port)"
	for _, c := range []struct {
		args []string
		what string
	}{
		{[]string{"get", "zones"}, "zones are listed by the global"},
		{[]string{"get", "zone", "zone-1"}, "zones are listed by the global"},
		{[]string{"get", "zone-token-keys"}, "zone token keys are kept by the global"},
		{[]string{"generate", "zone-token", "--zone", "zone-2"}, "zone tokens are issued by the global"},
		{[]string{"delete", "zone", "zone-1"}, "zones are managed on the global"},
	} {
		out, errOut, err := atollctl(t, "", append([]string{"--api-url", z.apiURL}, c.args...)...)
		if err == nil || out != "" || !strings.Contains(errOut, "atollctl: "+c.what+toGlobal) {
			t.Errorf("%v against the zone: %v, stdout %q, stderr %q; want a failure saying %q", c.args, err, out, errOut, c.what+toGlobal)
		}
	}

	toZone := "; " + g.apiURL + " is the global; try --api-url with a zone's API URL, e.g. http://127.0.0.1:5691 (zone-1 in the quick start); zones this global knows: zone-1 (online)"
	for _, c := range []struct {
		args []string
		what string
	}{
		{[]string{"get", "services"}, "services are served by a zone"},
		{[]string{"get", "proxies"}, "proxies connect to a zone"},
		{[]string{"inspect", "dataplane", "kong"}, "a proxy's configuration is served by the zone it connects to"},
		{[]string{"bootstrap", "dataplane", "kong"}, "bootstraps are served by the zone a proxy connects to"},
		{[]string{"status"}, "status shows a zone's sync with its global"},
		{[]string{"delete", "dataplane", "backend-1"}, "dataplanes are registered on a zone"},
	} {
		out, errOut, err := atollctl(t, "", append([]string{"--api-url", g.apiURL}, c.args...)...)
		if err == nil || out != "" || !strings.Contains(errOut, "atollctl: "+c.what+toZone) {
			t.Errorf("%v against the global: %v, stdout %q, stderr %q; want a failure saying %q", c.args, err, out, errOut, c.what+toZone)
		}
	}

	// apply sends each resource where it belongs and reports the others.
	dp := "type: Dataplane\nname: web-1\nnetworking: {address: 127.0.0.9, inbound: [{port: 8080, tags: {atoll.io/service: web}}]}\n"
	out, errOut, err := atollctl(t, dp, "--api-url", g.apiURL, "apply", "-f", "-")
	if err == nil || !strings.Contains(errOut, "Dataplane web-1 (mesh default): dataplanes are registered on a zone"+toZone) {
		t.Errorf("apply of a Dataplane to the global: %v, stdout %q, stderr %q", err, out, errOut)
	}
	if out, errOut, err := atollctl(t, dp, "--api-url", z.apiURL, "apply", "-f", "-"); err != nil || !strings.Contains(out, "created") {
		t.Errorf("apply of a Dataplane to the zone: %v %q %q", err, out, errOut)
	}

	for _, p := range []*process{g, z} {
		if out, errOut, err := atollctl(t, "", "--api-url", p.apiURL, "get", "meshes"); err != nil || !strings.Contains(out, "default") {
			t.Errorf("get meshes at %s: %v %q %q", p.apiURL, err, out, errOut)
		}
	}
}

// An API URL without a scheme is taken as http:// with a note; a server
// that is not atoll is named as such.
func TestAtollctlAPIURL(t *testing.T) {
	z := startZone(t, "zone-1", t.TempDir())
	bare := strings.TrimPrefix(z.apiURL, "http://")
	out, errOut, err := atollctl(t, "", "--api-url", bare, "get", "meshes")
	if err != nil || !strings.Contains(out, "default") ||
		!strings.Contains(errOut, `atollctl: --api-url "`+bare+`" has no scheme: using http://`+bare+" (write https:// for an API served over TLS)") {
		t.Errorf("--api-url %s: %v, stdout %q, stderr %q; want the meshes and a note on the scheme", bare, err, out, errOut)
	}
	out, errOut, err = atollctlEnv(t, []string{"ATOLL_API_URL=" + bare}, "get", "meshes")
	if err != nil || !strings.Contains(out, "default") || !strings.Contains(errOut, `ATOLL_API_URL "`+bare+`" has no scheme`) {
		t.Errorf("ATOLL_API_URL=%s: %v, stdout %q, stderr %q", bare, err, out, errOut)
	}

	notAtoll := httptest.NewServer(http.NotFoundHandler())
	defer notAtoll.Close()
	_, errOut, err = atollctl(t, "", "--api-url", notAtoll.URL, "get", "meshes")
	want := "atollctl: " + notAtoll.URL + " does not look like an atoll control plane (GET /identity: 404 Not Found: 404 page not found): check --api-url\n"
	if err == nil || errOut != want {
		t.Errorf("a server that is not atoll: %v, stderr %q; want %q", err, errOut, want)
	}
	_, errOut, err = atollctl(t, "", "--api-url", "ftp://"+bare, "get", "meshes")
	if err == nil || !strings.Contains(errOut, "the scheme must be http:// or https://") {
		t.Errorf("an ftp:// URL: %v, stderr %q", err, errOut)
	}
}

// Contexts name each plane's API once; the current one, --context, the
// environment and --api-url come in their order.
func TestAtollctlContexts(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	zdir := t.TempDir()
	z := startZone(t, "zone-1", zdir)
	dir := t.TempDir()
	config := filepath.Join(dir, "atoll", "config.yaml")
	env := []string{"ATOLLCTL_CONFIG=" + config}
	ctl := func(args ...string) (string, string, error) { return atollctlEnv(t, env, args...) }
	tokenFile := filepath.Join(zdir, "api-token")

	for _, args := range [][]string{
		{"config", "set-context", "global", "--api-url", g.apiURL},
		{"config", "set-context", "zone-1", "--api-url", strings.TrimPrefix(z.apiURL, "http://"), "--api-token-file", tokenFile},
		{"config", "use-context", "zone-1"},
	} {
		if out, errOut, err := ctl(args...); err != nil {
			t.Fatalf("%v: %v %q %q", args, err, out, errOut)
		}
	}
	if fi, err := os.Stat(config); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v; want mode 0600", fi, err)
	}
	out, _, err := ctl("config", "get-contexts")
	if err != nil || !strings.Contains(out, "*         zone-1   "+z.apiURL+"   -         "+tokenFile) || !strings.Contains(out, "          global   "+g.apiURL+"   -         -") {
		t.Errorf("get-contexts: %v\n%s", err, out)
	}

	// The current context serves zone commands; --context another.
	if out, errOut, err := ctl("get", "services"); err != nil || !strings.Contains(out, "No services found") {
		t.Errorf("get services in context zone-1: %v %q %q", err, out, errOut)
	}
	if out, errOut, err := ctl("--context", "global", "get", "zones"); err != nil || !strings.Contains(out, "No zones found") {
		t.Errorf("--context global get zones: %v %q %q", err, out, errOut)
	}
	_, errOut, err := ctl("get", "zones")
	if err == nil || !strings.Contains(errOut, "zones are listed by the global; "+z.apiURL+" is zone zone-1; try --api-url") ||
		!strings.HasSuffix(errOut, "; or use another context (atollctl config use-context NAME, or --context NAME): global\n") {
		t.Errorf("get zones in context zone-1: %v %q; want the plane and the other context named", err, errOut)
	}

	// ATOLL_API_URL comes before the current context, --api-url before both.
	_, errOut, err = atollctlEnv(t, append(env, "ATOLL_API_URL="+g.apiURL), "get", "services")
	if err == nil || !strings.Contains(errOut, "services are served by a zone; "+g.apiURL+" is the global") {
		t.Errorf("ATOLL_API_URL over the current context: %v %q", err, errOut)
	}
	if out, errOut, err := atollctlEnv(t, append(env, "ATOLL_API_URL="+g.apiURL), "--api-url", z.apiURL, "get", "services"); err != nil || !strings.Contains(out, "No services found") {
		t.Errorf("--api-url over ATOLL_API_URL: %v %q %q", err, out, errOut)
	}
	_, errOut, err = ctl("--context", "global", "--api-url", z.apiURL, "get", "meshes")
	if err == nil || !strings.Contains(errOut, "--api-url and --context both name the API: give one of them") {
		t.Errorf("--context with --api-url: %v %q", err, errOut)
	}

	// A context's token file is read per command: a wrong one names where
	// it came from.
	missing := filepath.Join(dir, "gone")
	os.WriteFile(missing, []byte("x\n"), 0o600)
	if _, errOut, err := ctl("config", "set-context", "zone-1", "--api-token-file", missing); err != nil {
		t.Fatalf("set-context zone-1 --api-token-file: %v %q", err, errOut)
	}
	os.Remove(missing)
	_, errOut, err = ctl("get", "meshes")
	if err == nil || !strings.Contains(errOut, `the token file of context "zone-1": open `+missing) {
		t.Errorf("a context's missing token file: %v %q", err, errOut)
	}

	if out, _, err := ctl("config", "current-context"); err != nil || out != "zone-1\n" {
		t.Errorf("current-context: %v %q", err, out)
	}
	if out, _, err := ctl("config", "delete-context", "zone-1"); err != nil || !strings.Contains(out, "it was the current context") {
		t.Errorf("delete-context: %v %q", err, out)
	}
	if _, errOut, err := ctl("config", "current-context"); err == nil || !strings.Contains(errOut, "no current context") {
		t.Errorf("current-context after deleting it: %v %q", err, errOut)
	}
}

// cliError carries a failed atollctl run into waitFor's message.
type cliError struct {
	out, errOut string
	err         error
}

func (e *cliError) Error() string {
	return "atollctl: " + strings.TrimSpace(e.out+" "+e.errOut) + " (" + errString(e.err) + ")"
}

func errString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
