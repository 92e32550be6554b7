package apiserver

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// The REST APIs change the mesh and hand out proxies' bootstrap tokens, so
// callers from other machines must send the control plane's API token
// (Authorization: Bearer TOKEN). Callers on this machine's loopback are
// trusted unless the operator says otherwise — the quick start, health
// checks and kubectl port-forward reach the API there — as long as they
// address it by a loopback name (see Authenticate). A few read-only
// paths are open to every caller: health, readiness, metrics (scraped
// from elsewhere), the CA certificates zones and proxies verify with, and
// the control plane's identity (see IdentityPath).

// openPaths answer without a token.
var openPaths = map[string]bool{
	"/healthz": true, "/readyz": true, "/metrics": true, "/kds-ca.pem": true, "/xds-ca.pem": true, caPath: true,
	IdentityPath: true,
}

// Authenticate lets through requests on open paths, with the token, and
// from loopback (unless loopbackToo) addressed to a loopback name; it
// answers 401 to the rest, and 403 to a loopback caller that addressed
// another name.
//
// The Host check stops DNS rebinding: a web page in a browser on this
// machine can make its own host name resolve to 127.0.0.1 and then reach the
// API from loopback, but its requests still carry that name as Host.
func Authenticate(token string, loopbackToo bool, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent := r.Header.Get("Authorization")
		trustedLoopback := !loopbackToo && fromLoopback(r)
		if openPaths[r.URL.Path] || subtle.ConstantTimeCompare([]byte(sent), want) == 1 ||
			(trustedLoopback && loopbackHost(r.Host)) {
			next.ServeHTTP(w, r)
			return
		}
		if trustedLoopback && sent == "" {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: fmt.Sprintf("Host %q is not a loopback name or address: callers on this machine are trusted without the API token only when they address it as localhost, 127.0.0.1 or [::1] (this stops web pages reaching the API through DNS rebinding): use such a URL (atollctl --api-url http://127.0.0.1:PORT), or send the API token (Authorization: Bearer TOKEN; atollctl --api-token-file FILE)", r.Host)})
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
		msg := "this API needs its token from callers on other machines: send Authorization: Bearer TOKEN (atollctl --api-token-file FILE), the token being in the control plane's api-token file"
		if sent != "" {
			msg = "the API token sent is not this control plane's: use the one in its api-token file"
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	})
}

func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// loopbackHost says whether a Host header names this machine's loopback:
// localhost or a name under .localhost (which browsers resolve to loopback
// themselves), an address in 127.0.0.0/8, or ::1; with any port or none.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Protect loads (or creates) the API token — tokenFile, or dataDir/api-token
// when empty — and wraps h so that callers send it, as Authenticate says.
// It returns the token file's path, for the log.
func Protect(h http.Handler, tokenFile, dataDir string, loopbackToo bool) (http.Handler, string, error) {
	if tokenFile == "" {
		tokenFile = filepath.Join(dataDir, "api-token")
	}
	token, err := certs.LoadOrCreateSecret(tokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("apiTokenFile: %w", err)
	}
	return Authenticate(token, loopbackToo, h), tokenFile, nil
}
