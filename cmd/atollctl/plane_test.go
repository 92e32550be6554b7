package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakePlane answers GET /identity as a control plane of kind (and zone)
// would, and passes every other request to next.
func fakePlane(kind, zone string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == identityPath {
			w.Header().Set("Content-Type", "application/json")
			if zone != "" {
				w.Write([]byte(`{"kind":"` + kind + `","zone":"` + zone + `","version":"dev"}`))
				return
			}
			w.Write([]byte(`{"kind":"` + kind + `","version":"dev"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// run executes atollctl's root command with args and returns stdout,
// stderr and the error main would print.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := rootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// Every command that talks to an API answers a wrong plane with what to
// run instead, before it asks for anything but the plane's identity and
// the hint's facts; commands both planes serve go through.
func TestCommandsNeedTheirPlane(t *testing.T) {
	t.Setenv(configEnv, t.TempDir()+"/config.yaml")
	t.Setenv("ATOLL_API_URL", "")
	var asked []string
	serve := func(kind, zone string) *httptest.Server {
		ts := httptest.NewServer(fakePlane(kind, zone, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked = append(asked, r.Method+" "+r.URL.Path)
			w.Header().Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/zones":
				w.Write([]byte(`{"total":2,"items":[{"name":"zone-1","online":true},{"name":"zone-2"}]}`))
			case "/zone":
				w.Write([]byte(`{"zone":"zone-1","globalAddress":"grpc://127.0.0.1:5685"}`))
			case "/meshes/default/dataplanes/kong": // inspect reads the Dataplane
				w.Write([]byte(`{"type":"Dataplane","mesh":"default","name":"kong","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`))
			default:
				w.Write([]byte(`{"total":0,"items":[]}`))
			}
		})))
		t.Cleanup(ts.Close)
		return ts
	}
	global, zone := serve(planeGlobal, ""), serve(planeZone, "zone-1")
	zoneOnly := [][]string{
		{"get", "services"}, {"get", "svc"}, {"get", "proxies"},
		{"inspect", "dataplane", "kong"}, {"bootstrap", "dataplane", "kong"}, {"bootstrap", "ingress", "zone-1"},
		{"status"}, {"accept-global", "0d5c1c9e"}, {"delete", "dataplane", "backend-1"},
	}
	globalOnly := [][]string{
		{"get", "zones"}, {"get", "zone", "zone-1"}, {"get", "zone-token-keys"}, {"get", "zoneinsights"},
		{"generate", "zone-token", "--zone", "zone-1"}, {"revoke", "zone-token", "--zone", "zone-1"},
		{"rotate", "zone-token-key"}, {"retire", "zone-token-key", "k1"}, {"delete", "mesh", "m1"}, {"delete", "zone", "zone-2"},
	}
	both := [][]string{{"get", "dataplanes"}, {"get", "meshes"}, {"get", "vips"}, {"get", "zoneingresses"}}
	for _, c := range zoneOnly {
		asked = nil
		_, _, err := run(t, append([]string{"--api-url", global.URL}, c...)...)
		want := "; " + global.URL + " is the global; try --api-url with a zone's API URL, e.g. http://127.0.0.1:5691 (zone-1 in the quick start); zones this global knows: zone-1 (online), zone-2 (offline)"
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%v against the global: %v, want an error ending %q", c, err, want)
		}
		if len(asked) != 1 || asked[0] != "GET /zones" {
			t.Errorf("%v against the global asked %v, want only GET /zones (for the hint)", c, asked)
		}
		if _, _, err := run(t, append([]string{"--api-url", zone.URL}, c...)...); err != nil {
			t.Errorf("%v against a zone: %v", c, err)
		}
	}
	for _, c := range globalOnly {
		asked = nil
		_, _, err := run(t, append([]string{"--api-url", zone.URL}, c...)...)
		want := "; " + zone.URL + " is zone zone-1; try --api-url http://127.0.0.1:5681 (zone zone-1 syncs with the global at grpc://127.0.0.1:5685; 5681 is the global's default API port)"
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%v against a zone: %v, want an error ending %q", c, err, want)
		}
		if len(asked) != 1 || asked[0] != "GET /zone" {
			t.Errorf("%v against a zone asked %v, want only GET /zone (for the hint)", c, asked)
		}
		if _, _, err := run(t, append([]string{"--api-url", global.URL}, c...)...); err != nil && !strings.Contains(err.Error(), "answered") {
			t.Errorf("%v against the global: %v", c, err)
		}
	}
	for _, c := range both {
		for _, ts := range []*httptest.Server{global, zone} {
			if _, _, err := run(t, append([]string{"--api-url", ts.URL}, c...)...); err != nil {
				t.Errorf("%v against %s: %v", c, ts.URL, err)
			}
		}
	}
}

// What says which plane a command needs starts the message.
func TestWrongPlaneSaysWhatIsServedWhere(t *testing.T) {
	t.Setenv(configEnv, t.TempDir()+"/config.yaml")
	global := httptest.NewServer(fakePlane(planeGlobal, "", http.NotFoundHandler()))
	defer global.Close()
	zone := httptest.NewServer(fakePlane(planeZone, "zone-9", http.NotFoundHandler()))
	defer zone.Close()
	for _, c := range []struct {
		url  string
		args []string
		want string
	}{
		{global.URL, []string{"get", "services"}, "services are served by a zone; " + global.URL + " is the global; try --api-url with a zone's API URL, e.g. http://127.0.0.1:5691"},
		{global.URL, []string{"inspect", "dp", "kong"}, "a proxy's configuration is served by the zone it connects to; "},
		{zone.URL, []string{"get", "zones"}, "zones are listed by the global; " + zone.URL + " is zone zone-9; try --api-url with the global's API URL, e.g. http://127.0.0.1:5681"},
		{zone.URL, []string{"generate", "zone-token", "--zone", "a"}, "zone tokens are issued by the global; "},
	} {
		_, _, err := run(t, append([]string{"--api-url", c.url}, c.args...)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error starting %q", c.args, err, c.want)
		}
	}
}

// A server that is not atoll is named as such, with what it answered.
func TestNotAtoll(t *testing.T) {
	t.Setenv(configEnv, t.TempDir()+"/config.yaml")
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "(GET /identity: 404 Not Found: 404 page not found): check --api-url"},
		{"HTML", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html><body>hello</body></html>")) }, "(GET /identity: 200 OK, but not JSON: <html><body>hello</body></html>): check --api-url"},
		{"other JSON", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"kind":"pod"}`)) }, `(GET /identity: 200 OK, but no atoll identity: {"kind":"pod"}): check --api-url`},
		{"a zone without a name", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"kind":"zone"}`)) }, `(GET /identity: 200 OK, but no atoll identity: {"kind":"zone"})`},
		{"401", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }, "(GET /identity: 401 Unauthorized: empty body)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := httptest.NewServer(c.handler)
			defer ts.Close()
			_, _, err := run(t, "--api-url", ts.URL, "get", "meshes")
			want := ts.URL + " does not look like an atoll control plane " + c.want
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%v, want an error saying %q", err, want)
			}
		})
	}
	// An atoll older than /identity answers with the resource API's 404.
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"no resource type is served at \"/identity\": see the README for the API"}`))
	}))
	defer old.Close()
	if _, _, err := run(t, "--api-url", old.URL, "get", "meshes"); err == nil || !strings.Contains(err.Error(), "older than this atollctl") {
		t.Errorf("an older atoll: %v, want it named as older", err)
	}
}
