package xds

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A proxyless client of a pod's Dataplane presents the pod's token from a
// file (grpc-go's jwt_token_file call credentials) instead of the zone's
// token, which its bootstrap then does not carry.
func TestGRPCBootstrapWithTokenFile(t *testing.T) {
	b, err := GRPCBootstrap("default.kong-0", "10.0.0.5:5678", "", "/etc/atoll/xds-ca.pem", "/var/run/secrets/atoll/token")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Servers []struct {
			ChannelCreds []struct {
				Type string `json:"type"`
			} `json:"channel_creds"`
			CallCreds []struct {
				Type   string            `json:"type"`
				Config map[string]string `json:"config"`
			} `json:"call_creds"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(got.Servers) != 1 || len(got.Servers[0].CallCreds) != 1 || got.Servers[0].CallCreds[0].Type != "jwt_token_file" ||
		got.Servers[0].CallCreds[0].Config["jwt_token_file"] != "/var/run/secrets/atoll/token" || got.Servers[0].ChannelCreds[0].Type != "tls" {
		t.Errorf("the bootstrap's server:\n%s", b)
	}
	if got.Node.ID != "default.kong-0" || len(got.Node.Metadata) != 0 {
		t.Errorf("the bootstrap's node carries %v, want no zone token:\n%s", got.Node.Metadata, b)
	}

	// grpc-go never sends call credentials over plaintext.
	if _, err := GRPCBootstrap("default.kong-0", "10.0.0.5:5678", "", "", "/var/run/secrets/atoll/token"); err == nil || !strings.Contains(err.Error(), "only over TLS") {
		t.Errorf("a token file without TLS: %v", err)
	}
	// Without a token file the zone's token is in the node's metadata.
	b, err = GRPCBootstrap("default.kong-0", "10.0.0.5:5678", "tok", "", "")
	if err != nil || strings.Contains(string(b), "call_creds") || !strings.Contains(string(b), `"`+TokenMetadataKey+`": "tok"`) {
		t.Errorf("a bootstrap with the zone's token: %v\n%s", err, b)
	}
}

// The zone serves a pod's Dataplane a proxyless bootstrap only with the
// pod's token file and over TLS, and other Dataplanes one without; every
// refusal says what to change.
func TestProxylessBootstrapOfAPodsDataplane(t *testing.T) {
	s, _, _ := pushTopology(t, 2)
	s.mu.Lock()
	s.cfg.ProxyAuthenticator = &fakeAuth{} // covers gw-0, not gw-1
	s.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/bootstrap", s.BootstrapHandler)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(name, query string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/meshes/default/dataplanes/" + name + "/bootstrap?kind=proxyless&xds=10.0.0.5:5678" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	const tokenFile = "&token-file=/var/run/secrets/atoll/token"
	const caFile = "&ca-file=/etc/atoll/xds-ca.pem"

	// Plaintext: the pod's token cannot be sent.
	if status, body := get("gw-0", tokenFile); status != http.StatusBadRequest || !strings.Contains(body, "turn on xDS TLS (--xds-tls)") {
		t.Errorf("a pod's Dataplane from a plaintext zone: %d %s", status, body)
	}
	if status, body := get("gw-1", ""); status != http.StatusOK || !strings.Contains(body, TokenMetadataKey) {
		t.Errorf("another Dataplane from a plaintext zone: %d %s", status, body)
	}

	s.cfg.CA = func() []byte { return []byte("a CA") }
	for _, c := range []struct {
		name, query string
		status      int
		says        string
	}{
		{"gw-0", tokenFile + caFile, http.StatusOK, `"jwt_token_file": "/var/run/secrets/atoll/token"`},
		{"gw-0", caFile, http.StatusBadRequest, "give token-file, the absolute path of that token in the pod"},
		{"gw-0", caFile + "&token-file=token", http.StatusBadRequest, "give the absolute path of the pod"},
		{"gw-1", tokenFile + caFile, http.StatusBadRequest, "is not a pod's, so its proxy presents the zone's token"},
		{"gw-1", caFile, http.StatusOK, TokenMetadataKey},
	} {
		status, body := get(c.name, c.query)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s %s: %d %s, want %d saying %q", c.name, c.query, status, body, c.status, c.says)
		}
		if status == http.StatusOK && c.name == "gw-0" && strings.Contains(body, TokenMetadataKey) {
			t.Errorf("%s %s: the bootstrap of a pod's Dataplane carries the zone's token:\n%s", c.name, c.query, body)
		}
	}
}
