package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kongJSON = `{"type":"Dataplane","mesh":"default","name":"kong","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`

const backendJSON = `{"type":"Dataplane","mesh":"default","name":"backend-1","networking":{"address":"127.0.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":"backend","atoll.io/protocol":"grpc"}}]}}`

type errorBody struct {
	Error  string `json:"error"`
	Causes []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"causes"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body is not {error, causes} JSON: %q", body)
	}
	return e
}

func (e errorBody) names(field string) bool {
	for _, c := range e.Causes {
		if c.Field == field {
			return true
		}
	}
	return strings.Contains(e.Error, field)
}

type meta struct {
	Type    string            `json:"type"`
	Mesh    string            `json:"mesh"`
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Labels  map[string]string `json:"labels"`
}

func decodeMeta(t *testing.T, body string) meta {
	t.Helper()
	var m meta
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not a resource: %q: %v", body, err)
	}
	return m
}

func listNames(t *testing.T, body string) []string {
	t.Helper()
	var l struct {
		Total int    `json:"total"`
		Items []meta `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("not a list: %q: %v", body, err)
	}
	if l.Total != len(l.Items) {
		t.Errorf("total %d but %d items", l.Total, len(l.Items))
	}
	var names []string
	for _, m := range l.Items {
		names = append(names, m.Name)
	}
	return names
}

func TestZoneRESTAPI(t *testing.T) {
	z := startZone(t, "zone-1", t.TempDir())
	dp := z.apiURL + "/meshes/default/dataplanes/"

	status, body := call(t, "GET", z.apiURL+"/meshes", "")
	if status != 200 || strings.Join(listNames(t, body), ",") != "default" {
		t.Fatalf("GET /meshes: %d %s, want mesh default out of the box", status, body)
	}

	status, body = call(t, "PUT", dp+"kong", kongJSON)
	if status != http.StatusCreated {
		t.Fatalf("PUT kong: %d %s", status, body)
	}
	created := decodeMeta(t, body)
	if created.Labels["atoll.io/zone"] != "zone-1" || created.Labels["atoll.io/origin"] != "zone" || created.Version == "" {
		t.Errorf("created kong meta: %+v, want zone and origin labels and a version", created)
	}

	status, body = call(t, "PUT", dp+"kong", kongJSON)
	if status != http.StatusOK || decodeMeta(t, body).Version != created.Version {
		t.Errorf("unchanged PUT: %d %s, want 200 and the same version %s", status, body, created.Version)
	}

	// A body naming the zone label cannot attribute the Dataplane elsewhere.
	spoof := strings.Replace(backendJSON, `"name":"backend-1",`, `"name":"backend-1","labels":{"atoll.io/zone":"zone-9"},`, 1)
	status, body = call(t, "PUT", dp+"backend-1", spoof)
	if status != http.StatusCreated || decodeMeta(t, body).Labels["atoll.io/zone"] != "zone-1" {
		t.Errorf("PUT with a foreign zone label: %d %s, want created with atoll.io/zone zone-1", status, body)
	}

	bad := []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"gateway with inbounds", "kong", `{"type":"Dataplane","networking":{"address":"127.0.0.1","inbound":[{"port":1,"tags":{"atoll.io/service":"a"}}],"gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`, 400, "networking.inbound"},
		{"port out of range", "kong", `{"type":"Dataplane","networking":{"address":"127.0.0.1","inbound":[{"port":70000,"tags":{"atoll.io/service":"a"}}]}}`, 400, "networking.inbound[0].port"},
		{"inbound without service", "kong", `{"type":"Dataplane","networking":{"address":"127.0.0.1","inbound":[{"port":80}]}}`, 400, `networking.inbound[0].tags["atoll.io/service"]`},
		{"bad address", "kong", `{"type":"Dataplane","networking":{"address":"1.2.3","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`, 400, "networking.address"},
		{"name not a DNS label", "Kong_1", `{"type":"Dataplane","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`, 400, "name"},
		{"name differs from URL", "kong", `{"type":"Dataplane","name":"other","networking":{"address":"127.0.0.1"}}`, 400, "name"},
		{"type differs from URL", "kong", `{"type":"Mesh","name":"kong"}`, 400, "type"},
		{"unknown field", "kong", `{"type":"Dataplane","networking":{"adress":"127.0.0.1"}}`, 400, "adress"},
		{"not JSON or YAML", "kong", `{{{`, 400, "not valid JSON"},
		{"missing mesh", "kong", strings.Replace(kongJSON, `"mesh":"default"`, `"mesh":"nope"`, 1), 400, "mesh"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			status, body := call(t, "PUT", dp+c.path, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			if e := decodeError(t, body); !e.names(c.field) {
				t.Errorf("error does not name %q: %s", c.field, body)
			}
		})
	}
	// None of that changed what is stored.
	status, body = call(t, "GET", dp+"kong", "")
	if status != 200 || decodeMeta(t, body).Version != created.Version {
		t.Fatalf("kong after bad PUTs: %d %s, want version %s", status, body, created.Version)
	}
	if status, body = call(t, "GET", z.apiURL+"/meshes/default/dataplanes", ""); strings.Join(listNames(t, body), ",") != "backend-1,kong" {
		t.Fatalf("dataplanes after bad PUTs: %s", body)
	}

	huge := `{"type":"Dataplane","name":"kong","labels":{"a":"` + strings.Repeat("x", 2<<20) + `"}}`
	if status, body = call(t, "PUT", dp+"kong", huge); status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d %s, want 413", status, body)
	}

	stale := strings.Replace(kongJSON, `"name":"kong"`, `"name":"kong","version":"1"`, 1)
	changed := strings.Replace(kongJSON, "127.0.0.1", "127.0.0.2", 1)
	status, body = call(t, "PUT", dp+"kong", changed)
	if status != 200 || decodeMeta(t, body).Version == created.Version {
		t.Fatalf("changing PUT: %d %s, want 200 and a new version", status, body)
	}
	if status, body = call(t, "PUT", dp+"kong", stale); status != http.StatusConflict {
		t.Errorf("PUT at a stale version: %d %s, want 409", status, body)
	}
	if status, body = call(t, "DELETE", dp+"kong?version="+created.Version, ""); status != http.StatusConflict {
		t.Errorf("DELETE at a stale version: %d %s, want 409", status, body)
	}

	if status, body = call(t, "PUT", z.apiURL+"/meshes/other", `{"type":"Mesh"}`); status != http.StatusMethodNotAllowed || !strings.Contains(decodeError(t, body).Error, "global") {
		t.Errorf("PUT mesh on a zone: %d %s, want 405 pointing at the global", status, body)
	}
	if status, body = call(t, "GET", dp+"nope", ""); status != http.StatusNotFound {
		t.Errorf("GET missing: %d %s, want 404", status, body)
	}
	if status, body = call(t, "GET", z.apiURL+"/meshes/default/widgets", ""); status != http.StatusNotFound {
		t.Errorf("GET unknown type: %d %s, want 404", status, body)
	}
	if status, body = call(t, "DELETE", dp+"kong", ""); status != 200 {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	if status, _ = call(t, "GET", dp+"kong", ""); status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", status)
	}
	if status, _ = call(t, "DELETE", dp+"kong", ""); status != http.StatusNotFound {
		t.Errorf("second DELETE: %d, want 404", status)
	}
}

func TestGlobalRESTAPI(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	status, body := call(t, "PUT", g.apiURL+"/meshes/payments", `{"type":"Mesh","name":"payments"}`)
	if status != http.StatusCreated || decodeMeta(t, body).Labels["atoll.io/origin"] != "global" {
		t.Fatalf("PUT mesh: %d %s", status, body)
	}
	if status, body = call(t, "GET", g.apiURL+"/meshes", ""); strings.Join(listNames(t, body), ",") != "default,payments" {
		t.Errorf("GET /meshes: %d %s", status, body)
	}
	if status, body = call(t, "GET", g.apiURL+"/zones", ""); status != 200 || len(listNames(t, body)) != 0 {
		t.Errorf("GET /zones: %d %s, want an empty list", status, body)
	}
	if status, body = call(t, "PUT", g.apiURL+"/meshes/default/dataplanes/kong", kongJSON); status != http.StatusMethodNotAllowed || !strings.Contains(body, "zone") {
		t.Errorf("PUT dataplane on the global: %d %s, want 405 pointing at a zone", status, body)
	}
	if status, body = call(t, "PUT", g.apiURL+"/meshes/payments", `{"type":"Mesh","mesh":"default"}`); status != 400 || !decodeError(t, body).names("mesh") {
		t.Errorf("PUT mesh with a mesh field: %d %s, want 400 naming mesh", status, body)
	}
	// VIPs are kept one record per service: a mesh no zone offers a
	// service in has none.
	if status, body := call(t, "GET", g.apiURL+"/meshes/payments/viptables", ""); status != 200 || len(listNames(t, body)) != 0 {
		t.Errorf("payments' VIP records: %d %s, want none", status, body)
	}
	if status, body = call(t, "DELETE", g.apiURL+"/meshes/payments", ""); status != 200 {
		t.Errorf("DELETE mesh: %d %s", status, body)
	}

	status, body = call(t, "GET", g.apiURL+"/metrics", "")
	if status != 200 || !strings.Contains(body, `atoll_api_requests_total{code="201",method="PUT"`) {
		t.Errorf("/metrics lacks the API request counter: %d", status)
	}
	if status, body = call(t, "GET", g.apiURL+"/healthz", ""); status != 200 {
		t.Errorf("/healthz: %d %s", status, body)
	}
}

// The API asks callers for its token (here from loopback too, as it does
// from other machines); health, readiness, metrics and the KDS CA stay
// open; atollctl sends the token from the control plane's api-token file.
func TestAPIToken(t *testing.T) {
	dir := t.TempDir()
	g := startGlobal(t, dir, "--api-auth-loopback")
	status, body := call(t, "GET", g.apiURL+"/meshes", "")
	if status != http.StatusUnauthorized || !strings.Contains(body, "--api-token-file") {
		t.Errorf("GET /meshes without the token: %d %s, want 401 saying how to send it", status, body)
	}
	for _, open := range []string{"/healthz", "/readyz", "/metrics", "/kds-ca.pem"} {
		if status, body := call(t, "GET", g.apiURL+open, ""); status != http.StatusOK {
			t.Errorf("GET %s without the token: %d %s, want it open", open, status, body)
		}
	}
	tokenFile := filepath.Join(dir, "api-token")
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the generated token file: %v %v", fi, err)
	}
	if out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "--api-token-file", tokenFile, "get", "meshes"); err != nil || !strings.Contains(out, "default") {
		t.Errorf("atollctl with the token file: %v %q\n%s", err, errOut, out)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "get", "meshes"); err == nil || !strings.Contains(errOut, "--api-token-file") {
		t.Errorf("atollctl without the token: %v %q", err, errOut)
	}
	req, _ := http.NewRequest("GET", g.apiURL+"/meshes", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-wrong-token")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
