package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAuthenticate(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	const token = "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name, remote, path, auth string
		loopbackToo              bool
		want                     int
		says                     string
	}{
		{"loopback", "127.0.0.1:4000", "/meshes", "", false, http.StatusTeapot, ""},
		{"IPv6 loopback", "[::1]:4000", "/meshes", "", false, http.StatusTeapot, ""},
		{"remote without token", "10.0.0.7:4000", "/meshes", "", false, http.StatusUnauthorized, "--api-token-file"},
		{"remote with a wrong token", "10.0.0.7:4000", "/meshes", "Bearer nope", false, http.StatusUnauthorized, "not this control plane's"},
		{"remote with the token", "10.0.0.7:4000", "/meshes", "Bearer " + token, false, http.StatusTeapot, ""},
		{"remote health check", "10.0.0.7:4000", "/readyz", "", false, http.StatusTeapot, ""},
		{"remote metrics", "10.0.0.7:4000", "/metrics", "", false, http.StatusTeapot, ""},
		{"remote CA", "10.0.0.7:4000", "/kds-ca.pem", "", false, http.StatusTeapot, ""},
		{"loopback when loopback needs it too", "127.0.0.1:4000", "/meshes", "", true, http.StatusUnauthorized, "Authorization"},
		{"loopback with the token when loopback needs it too", "127.0.0.1:4000", "/meshes", "Bearer " + token, true, http.StatusTeapot, ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", c.path, nil)
		r.RemoteAddr = c.remote
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		Authenticate(token, c.loopbackToo, ok).ServeHTTP(w, r)
		if w.Code != c.want || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, w.Code, w.Body, c.want, c.says)
		}
	}
}
