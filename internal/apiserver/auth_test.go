package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	const token = "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, remote, host, path, auth string
		loopbackToo                    bool
		want                           int
		says                           string
	}{
		{"loopback", "127.0.0.1:4000", "127.0.0.1:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"IPv6 loopback", "[::1]:4000", "[::1]:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback as localhost", "127.0.0.1:4000", "localhost:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback, Host without a port", "127.0.0.1:4000", "localhost", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback, Host in capitals with a final dot", "127.0.0.1:4000", "LocalHost.:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback, a name under .localhost", "127.0.0.1:4000", "atoll.localhost:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback, another 127/8 address", "127.0.0.1:4000", "127.3.2.1:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"loopback, IPv4-mapped loopback", "[::ffff:127.0.0.1]:4000", "[::ffff:127.0.0.1]:5681", "/meshes", "", false, http.StatusTeapot, ""},
		{"DNS rebinding: loopback caller, foreign Host", "127.0.0.1:4000", "evil.example:5681", "/meshes", "", false, http.StatusForbidden, `Host "evil.example:5681" is not a loopback name`},
		{"DNS rebinding without a port", "127.0.0.1:4000", "evil.example", "/meshes", "", false, http.StatusForbidden, "--api-token-file"},
		{"loopback caller, Host a non-loopback address", "[::1]:4000", "192.168.1.5:5681", "/meshes", "", false, http.StatusForbidden, "DNS rebinding"},
		{"loopback caller, Host localhost.evil.example", "127.0.0.1:4000", "localhost.evil.example", "/meshes", "", false, http.StatusForbidden, "not a loopback name"},
		{"loopback caller, empty Host", "127.0.0.1:4000", "", "/meshes", "", false, http.StatusForbidden, "not a loopback name"},
		{"loopback caller, foreign Host, the token", "127.0.0.1:4000", "evil.example:5681", "/meshes", "Bearer " + token, false, http.StatusTeapot, ""},
		{"loopback caller, foreign Host, a wrong token", "127.0.0.1:4000", "evil.example:5681", "/meshes", "Bearer nope", false, http.StatusUnauthorized, "not this control plane's"},
		{"loopback caller, foreign Host, open path", "127.0.0.1:4000", "evil.example:5681", "/readyz", "", false, http.StatusTeapot, ""},
		{"remote without token", "10.0.0.7:4000", "10.0.0.1:5681", "/meshes", "", false, http.StatusUnauthorized, "--api-token-file"},
		{"remote naming loopback in Host", "10.0.0.7:4000", "127.0.0.1:5681", "/meshes", "", false, http.StatusUnauthorized, "--api-token-file"},
		{"remote with a wrong token", "10.0.0.7:4000", "10.0.0.1:5681", "/meshes", "Bearer nope", false, http.StatusUnauthorized, "not this control plane's"},
		{"remote with the token", "10.0.0.7:4000", "atoll.example:5681", "/meshes", "Bearer " + token, false, http.StatusTeapot, ""},
		{"remote health check", "10.0.0.7:4000", "10.0.0.1:5681", "/readyz", "", false, http.StatusTeapot, ""},
		{"remote metrics", "10.0.0.7:4000", "10.0.0.1:5681", "/metrics", "", false, http.StatusTeapot, ""},
		{"remote KDS CA", "10.0.0.7:4000", "10.0.0.1:5681", "/kds-ca.pem", "", false, http.StatusTeapot, ""},
		{"remote API CA", "10.0.0.7:4000", "10.0.0.1:5681", "/api-ca.pem", "", false, http.StatusTeapot, ""},
		{"remote identity", "10.0.0.7:4000", "10.0.0.1:5681", "/identity", "", true, http.StatusTeapot, ""},
		{"loopback when loopback needs it too", "127.0.0.1:4000", "127.0.0.1:5681", "/meshes", "", true, http.StatusUnauthorized, "Authorization"},
		{"loopback with the token when loopback needs it too", "127.0.0.1:4000", "evil.example", "/meshes", "Bearer " + token, true, http.StatusTeapot, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", c.path, nil)
			r.RemoteAddr, r.Host = c.remote, c.host
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			Authenticate(token, c.loopbackToo, ok).ServeHTTP(w, r)
			var body ErrorBody
			if c.says != "" {
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatalf("%d %s: not a JSON error: %v", w.Code, w.Body, err)
				}
			}
			if w.Code != c.want || !strings.Contains(body.Error, c.says) {
				t.Errorf("%d %s, want %d saying %q", w.Code, w.Body, c.want, c.says)
			}
		})
	}
}
