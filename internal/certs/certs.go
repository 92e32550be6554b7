// Package certs makes self-signed CAs and server certificates (the one a
// global uses for KDS when none is configured, and a zone ingress's), and
// serves certificates from files that may be replaced while running.
package certs

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/atoll-mesh/atoll/internal/atomicfile"
)

// Files are the PEM files of a generated identity: a CA and a server
// certificate it signed.
type Files struct {
	CA, CAKey, Cert, Key string
}

// FilesIn names the files EnsureSelfSigned keeps in dir. (They are named
// kds-* wherever they are, after the first identity made this way.)
func FilesIn(dir string) Files {
	return Files{CA: filepath.Join(dir, "kds-ca.pem"), CAKey: filepath.Join(dir, "kds-ca-key.pem"),
		Cert: filepath.Join(dir, "kds.pem"), Key: filepath.Join(dir, "kds-key.pem")}
}

// Renewal is when a server certificate is re-issued before it expires.
const Renewal = 30 * 24 * time.Hour

// Outcome says what EnsureSelfSigned did, for the log.
type Outcome struct {
	// CreatedCA: a new CA was made; whoever trusted an earlier one (zones
	// holding an older kds-ca.pem) must fetch it again.
	CreatedCA bool
	// ReplacedCA: the CA made replaces an earlier one, whose key was not
	// kept (made by an older atoll) while the certificate had to change.
	ReplacedCA bool
	// Issued: a new server certificate was issued, and why.
	Issued bool
	Reason string
}

// EnsureSelfSigned keeps a CA and a server certificate for hosts (IP
// addresses or DNS names) in dir and returns their paths. The CA is made
// once and kept, so whoever trusts it keeps trusting it; the server
// certificate, valid for validity, is re-issued by that CA when it does not
// cover every host (an address that changed, a name added) or expires
// within Renewal.
func EnsureSelfSigned(dir string, hosts []string, validity time.Duration) (Files, Outcome, error) {
	f := FilesIn(dir)
	var out Outcome
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, out, err
	}
	now := time.Now()
	ca, caKey, err := loadCA(f)
	switch {
	case err == nil:
	case exists(f.CA) && !exists(f.CAKey):
		// Made before the CA key was kept: the certificate can only be
		// kept as it is, or replaced with a new CA.
		reason := needsIssue(f, nil, hosts, now)
		if reason == "" {
			return f, out, nil
		}
		if ca, caKey, err = newCA(f, now); err != nil {
			return f, out, err
		}
		out.CreatedCA, out.ReplacedCA, out.Reason = true, true, reason
	case !exists(f.CA):
		if ca, caKey, err = newCA(f, now); err != nil {
			return f, out, err
		}
		out.CreatedCA = true
	default:
		return f, out, fmt.Errorf("%s: %w (remove the directory to start over with a new CA)", dir, err)
	}
	reason := needsIssue(f, ca, hosts, now)
	if out.CreatedCA {
		reason = cmp.Or(out.Reason, "new CA")
	}
	if reason == "" {
		return f, out, nil
	}
	out.Issued, out.Reason = true, reason
	return f, out, issue(f, ca, caKey, hosts, now, validity)
}

// loadCA reads the CA certificate and key.
func loadCA(f Files) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(f.CA, f.CAKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !ca.IsCA {
		return nil, nil, fmt.Errorf("%s is not an ECDSA CA", f.CA)
	}
	return ca, key, nil
}

func newCA(f Files, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "atoll CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	// The server certificate goes first: a CA without one is never left
	// paired with a certificate of another CA.
	os.Remove(f.Cert)
	if err := writePEM(f.CAKey, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// needsIssue says why the server certificate must be (re-)issued, or "".
// With ca nil, any issuer is accepted.
func needsIssue(f Files, ca *x509.Certificate, hosts []string, now time.Time) string {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return "no usable certificate"
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return "no usable certificate"
	}
	if ca != nil {
		if err := leaf.CheckSignatureFrom(ca); err != nil {
			return "signed by another CA"
		}
	}
	if leaf.NotAfter.Sub(now) < Renewal {
		return "expires " + leaf.NotAfter.UTC().Format(time.DateOnly)
	}
	var missing []string
	for _, h := range hosts {
		if h != "" && leaf.VerifyHostname(h) != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return "does not cover " + strings.Join(missing, ", ")
	}
	return ""
}

// issue writes a new server key and a certificate for hosts signed by ca.
func issue(f Files, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time, validity time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "atoll"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	// Key, then certificate: a reader that finds a new certificate finds
	// its key (Reloader keeps the last good pair meanwhile).
	if err := writePEM(f.Key, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(f.Cert, "CERTIFICATE", der, 0o644)
}

// DefaultHosts are the names a generated certificate covers: loopback and
// this machine's host name and addresses.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	return hosts
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

// writeFile replaces path with data whole and durably: a reader sees the
// old file or the new one, and a key written survives a crash.
func writeFile(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

// Reloader serves the certificate in a pair of PEM files and follows
// them: when either file changes (a certificate renewed in place, by atoll
// or by a tool such as cert-manager), the next handshake loads the new
// pair. A pair that does not load keeps the last good one in use.
type Reloader struct {
	certFile, keyFile string

	mu              sync.Mutex
	certPEM, keyPEM []byte // of cert
	cert            *tls.Certificate
	lastErr         error
}

// NewReloader loads the pair once: a pair that does not load is an error.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current()
}

// Err is the last failure to load a changed pair (nil once one loads).
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Reloader) current() (*tls.Certificate, error) {
	// The files are read on every handshake (KDS connections are few and
	// long): any change shows, even one within a file system's timestamp
	// granularity.
	certPEM, err1 := os.ReadFile(r.certFile)
	keyPEM, err2 := os.ReadFile(r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmp.Or(err1, err2); err != nil {
		return r.keep(fmt.Errorf("reading %s and %s: %w", r.certFile, r.keyFile, err))
	}
	if r.cert != nil && bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return r.cert, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return r.keep(fmt.Errorf("loading %s and %s: %w", r.certFile, r.keyFile, err))
	}
	r.cert, r.certPEM, r.keyPEM, r.lastErr = &pair, certPEM, keyPEM, nil
	return r.cert, nil
}

// keep serves the last good pair, if any, until the files are whole again.
func (r *Reloader) keep(err error) (*tls.Certificate, error) {
	r.lastErr = err
	if r.cert != nil {
		return r.cert, nil
	}
	return nil, err
}

// Maintain keeps the self-signed certificate in dir current until ctx
// ends: EnsureSelfSigned now, then every interval with the hosts of that
// moment (addresses change). report is told each outcome; Maintain returns
// the files and the first error only.
func Maintain(ctx context.Context, dir string, hosts func() []string, validity, interval time.Duration, report func(Outcome, error)) (Files, error) {
	files, out, err := EnsureSelfSigned(dir, hosts(), validity)
	report(out, err)
	if err != nil {
		return files, err
	}
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, out, err := EnsureSelfSigned(dir, hosts(), validity)
				report(out, err)
			}
		}
	}()
	return files, nil
}

// LoadOrCreateSecret reads a secret (one line of text) from path, creating
// it the first time: 32 random bytes, base64url, in a file of mode 0600.
func LoadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		secret := strings.TrimSpace(string(b))
		if len(secret) < 16 {
			return "", fmt.Errorf("%s: %d characters, want at least 16 (remove the file to make a new one)", path, len(secret))
		}
		return secret, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return secret, writeFile(path, []byte(secret+"\n"), 0o600)
}
