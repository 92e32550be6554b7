package apiserver

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// The REST APIs change the mesh and hand out proxies' bootstrap tokens, so
// callers from other machines must send the control plane's API token
// (Authorization: Bearer TOKEN). Callers on this machine's loopback are
// trusted unless the operator says otherwise — the quick start, health
// checks and kubectl port-forward reach the API there. A few read-only
// paths are open to every caller: health, readiness, metrics (scraped
// from elsewhere) and the CA certificates zones and proxies verify with.

// openPaths answer without a token.
var openPaths = map[string]bool{
	"/healthz": true, "/readyz": true, "/metrics": true, "/kds-ca.pem": true, "/xds-ca.pem": true,
}

// Authenticate lets through requests on open paths, from loopback (unless
// loopbackToo), and with the token; it answers 401 to the rest.
func Authenticate(token string, loopbackToo bool, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] || (!loopbackToo && fromLoopback(r)) ||
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
		msg := "this API needs its token from callers on other machines: send Authorization: Bearer TOKEN (atollctl --api-token-file FILE), the token being in the control plane's api-token file"
		if r.Header.Get("Authorization") != "" {
			msg = "the API token sent is not this control plane's: use the one in its api-token file"
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	})
}

func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
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
