package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/config"
)

// The API carries the API token, proxies' bootstrap tokens and every
// resource, so it is served in plaintext only where nobody else can listen:
// on loopback. A listener beyond loopback serves TLS — from certificate
// files, or with a certificate the control plane generates and keeps
// current, its CA served at /api-ca.pem — unless the operator accepts
// plaintext explicitly (apiInsecure).

// certValidity is how long a generated API certificate is valid; it is
// re-issued by the same CA certs.Renewal before it expires.
const certValidity = 365 * 24 * time.Hour

// caPath serves the generated CA; it answers without a token.
const caPath = "/api-ca.pem"

// TLS says how the API is served: plaintext (the zero value), from
// certificate files, or with a generated certificate.
type TLS struct {
	// CertFile and KeyFile are a PEM certificate and key, followed on disk:
	// a pair replaced while running is served from the next connection on.
	CertFile, KeyFile string
	// Generate keeps a CA and a certificate it signed in Dir, re-issued
	// before it expires or when a host is added, and serves the CA at
	// /api-ca.pem.
	Generate bool
	Dir      string
	// SANs are further DNS names and IP addresses the generated certificate
	// covers, besides loopback and this machine's host name and addresses.
	SANs []string
}

// Enabled says whether the API serves TLS.
func (t TLS) Enabled() bool { return t.Generate || t.CertFile != "" }

// Check checks the API's TLS settings together with its listen address,
// each error naming the setting as in the configuration file (apiTLS,
// apiTLSCert, apiTLSKey, apiTLSSANs, apiInsecure). insecure accepts
// plaintext on an address beyond loopback.
func (t TLS) Check(addr string, insecure bool) error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("apiTLSCert and apiTLSKey: give both, or neither"))
	}
	if t.Generate && t.CertFile != "" {
		errs = append(errs, errors.New("apiTLS: a generated certificate was asked for, but apiTLSCert is set too: choose one"))
	}
	if insecure && t.Enabled() {
		errs = append(errs, errors.New("apiInsecure: plaintext was accepted, but apiTLS or apiTLSCert asks for TLS: choose one"))
	}
	if len(t.SANs) > 0 && !t.Generate {
		errs = append(errs, errors.New("apiTLSSANs: names for the generated certificate, but apiTLS is not set: set it, or drop them"))
	}
	for i, san := range t.SANs {
		if net.ParseIP(san) == nil && !config.IsDNSName(san) {
			errs = append(errs, fmt.Errorf("apiTLSSANs[%d]: %q is neither an IP address nor a DNS name (e.g. atoll.example.com, 10.0.0.5; no port, no scheme)", i, san))
		}
	}
	if !t.Enabled() && !insecure && !loopbackListener(addr) && listenHostValid(addr) {
		errs = append(errs, fmt.Errorf("apiAddr: %q listens beyond loopback in plaintext, where the API token and proxies' tokens would cross the network in the clear: serve TLS (--api-tls for a generated certificate, or --api-tls-cert and --api-tls-key), listen on loopback only (127.0.0.1:PORT), or accept plaintext with --api-insecure", addr))
	}
	return errors.Join(errs...)
}

// loopbackListener says whether a listen address (host:port) binds
// loopback only; an empty host binds every interface. An address that does
// not parse is reported by config.CheckListenAddr, and counts as not
// loopback here.
func loopbackListener(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// listenHostValid says whether addr's host is one config.CheckListenAddr
// accepts, so a malformed address is reported once, by that check.
func listenHostValid(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && (host == "" || host == "localhost" || net.ParseIP(host) != nil)
}

// serverTLS prepares the server's TLS configuration. A generated
// certificate is kept current until ctx ends; caFile is its CA ("" for
// configured files).
func serverTLS(ctx context.Context, t TLS, log *slog.Logger) (cfg *tls.Config, caFile string, err error) {
	certFile, keyFile := t.CertFile, t.KeyFile
	if t.Generate {
		hosts := func() []string { return append(certs.DefaultHosts(), t.SANs...) }
		files, err := certs.Maintain(ctx, t.Dir, hosts, certValidity, 12*time.Hour, func(out certs.Outcome, err error) {
			switch {
			case err != nil:
				log.Error("keeping the API certificate current failed; retrying in 12h", "dir", t.Dir, "error", err)
			case out.ReplacedCA:
				log.Warn("generated a new API CA: callers that trusted the previous one must fetch /api-ca.pem again", "dir", t.Dir, "reason", out.Reason)
			case out.CreatedCA:
				log.Info("generated an API CA and certificate; callers verify with the CA served at /api-ca.pem", "dir", t.Dir)
			case out.Issued:
				log.Info("re-issued the API certificate with the same CA", "reason", out.Reason, "dir", t.Dir)
			}
		})
		if err != nil {
			return nil, "", fmt.Errorf("dataDir: keeping the API certificate in %s: %w", t.Dir, err)
		}
		certFile, keyFile, caFile = files.Cert, files.Key, files.CA
	}
	reloader, err := certs.NewReloader(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("apiTLSCert/apiTLSKey: %w", err)
	}
	return &tls.Config{GetCertificate: reloader.GetCertificate, MinVersion: tls.VersionTLS12}, caFile, nil
}

// serveCA answers GET /api-ca.pem with the generated CA, read on every
// request so a replaced CA shows at once; it passes other requests on.
func serveCA(caFile string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != caPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: caPath + " answers GET only"})
			return
		}
		if caFile == "" {
			writeJSON(w, http.StatusNotFound, ErrorBody{Error: "this control plane has no generated API certificate (it serves plaintext, or the certificate in apiTLSCert): verify it with the CA that signed that certificate"})
			return
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			writeError(w, fmt.Errorf("reading the API CA: %w", err))
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pem)
	})
}
