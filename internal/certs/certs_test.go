package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const year = 365 * 24 * time.Hour

func leaf(t *testing.T, f Files) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verifies checks the certificate is valid for host under the CA file.
func verifies(t *testing.T, f Files, host string) error {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(read(t, f.CA))) {
		t.Fatal("the CA file holds no certificate")
	}
	_, err := leaf(t, f).Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
	return err
}

// The CA is made once; the certificate is re-issued by it when a host is
// added or it nears its end, and otherwise kept.
func TestEnsureSelfSignedKeepsTheCA(t *testing.T) {
	dir := t.TempDir()
	f, out, err := EnsureSelfSigned(dir, []string{"localhost", "127.0.0.1"}, year)
	if err != nil || !out.CreatedCA || !out.Issued {
		t.Fatalf("first call: %+v %v", out, err)
	}
	for _, h := range []string{"localhost", "127.0.0.1"} {
		if err := verifies(t, f, h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if fi, err := os.Stat(f.CAKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v %v, want mode 0600", fi, err)
	}
	ca, cert := read(t, f.CA), read(t, f.Cert)

	if _, out, err := EnsureSelfSigned(dir, []string{"127.0.0.1", "localhost", ""}, year); err != nil || out.Issued || out.CreatedCA || read(t, f.Cert) != cert {
		t.Errorf("the same hosts: %+v %v, want everything kept", out, err)
	}

	_, out, err = EnsureSelfSigned(dir, []string{"localhost", "127.0.0.1", "global.example", "10.0.0.5"}, year)
	if err != nil || !out.Issued || out.CreatedCA || !strings.Contains(out.Reason, "global.example, 10.0.0.5") {
		t.Fatalf("hosts added: %+v %v, want a new certificate naming what it lacked", out, err)
	}
	if read(t, f.CA) != ca || read(t, f.Cert) == cert {
		t.Error("hosts added: want the same CA and a new certificate")
	}
	for _, h := range []string{"localhost", "global.example", "10.0.0.5"} {
		if err := verifies(t, f, h); err != nil {
			t.Errorf("%s under the kept CA: %v", h, err)
		}
	}

	// A certificate valid for less than Renewal is re-issued.
	if _, _, err := EnsureSelfSigned(t.TempDir(), nil, year); err != nil {
		t.Fatal(err)
	}
	short := t.TempDir()
	if _, _, err := EnsureSelfSigned(short, []string{"localhost"}, Renewal/2); err != nil {
		t.Fatal(err)
	}
	sf, out, err := EnsureSelfSigned(short, []string{"localhost"}, year)
	if err != nil || !out.Issued || !strings.Contains(out.Reason, "expires") {
		t.Fatalf("near its end: %+v %v", out, err)
	}
	if left := time.Until(leaf(t, sf).NotAfter); left < year-time.Hour*2 {
		t.Errorf("renewed certificate valid for %s more", left)
	}
}

// A data dir made before the CA key was kept: the certificate is kept
// while it covers the hosts, and otherwise replaced with a new CA, which
// is said.
func TestEnsureSelfSignedWithoutCAKey(t *testing.T) {
	dir := t.TempDir()
	f, _, err := EnsureSelfSigned(dir, []string{"localhost"}, year)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(f.CAKey)
	ca := read(t, f.CA)
	if _, out, err := EnsureSelfSigned(dir, []string{"localhost"}, year); err != nil || out.Issued || read(t, f.CA) != ca {
		t.Errorf("covered: %+v %v, want kept", out, err)
	}
	_, out, err := EnsureSelfSigned(dir, []string{"localhost", "global.example"}, year)
	if err != nil || !out.ReplacedCA || !out.Issued || read(t, f.CA) == ca {
		t.Fatalf("not covered: %+v %v, want a new CA, said", out, err)
	}
	if err := verifies(t, f, "global.example"); err != nil {
		t.Error(err)
	}
}

func TestEnsureSelfSignedRefusesABrokenCA(t *testing.T) {
	dir := t.TempDir()
	f, _, err := EnsureSelfSigned(dir, []string{"localhost"}, year)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.CAKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnsureSelfSigned(dir, []string{"localhost"}, year); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("a CA key that does not load: %v, want an error naming the directory", err)
	}
}

// The reloader serves a replaced pair from the next handshake on, and the
// last good pair while the files are not a pair.
func TestReloaderFollowsTheFiles(t *testing.T) {
	a, _, err := EnsureSelfSigned(t.TempDir(), []string{"a.example"}, year)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := EnsureSelfSigned(t.TempDir(), []string{"b.example"}, year)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	put := func(f Files) {
		t.Helper()
		for src, dst := range map[string]string{f.Cert: cert, f.Key: key} {
			if err := os.WriteFile(dst+".tmp", []byte(read(t, src)), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(a)
	rl, err := NewReloader(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	name := func() string {
		t.Helper()
		c, err := rl.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := x509.ParseCertificate(c.Certificate[0])
		return l.DNSNames[0]
	}
	if got := name(); got != "a.example" {
		t.Fatalf("serving %s, want a.example", got)
	}
	put(b)
	if got := name(); got != "b.example" {
		t.Errorf("after the files were replaced: serving %s, want b.example", got)
	}
	// Half-replaced: b's key with a's certificate does not load.
	if err := os.WriteFile(cert, []byte(read(t, a.Cert)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := name(); got != "b.example" || rl.Err() == nil {
		t.Errorf("a mismatched pair: serving %s (err %v), want b.example kept and the error kept", got, rl.Err())
	}
	put(a)
	if got := name(); got != "a.example" || rl.Err() != nil {
		t.Errorf("whole again: serving %s (err %v)", got, rl.Err())
	}
	if _, err := NewReloader(filepath.Join(dir, "none.crt"), key); err == nil {
		t.Error("a missing certificate file loaded")
	}
}

func TestSecretIsKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "api-token")
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) < 40 {
		t.Fatalf("%q %v", a, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v %v, want mode 0600", fi, err)
	}
	if b, err := LoadOrCreateSecret(path); err != nil || b != a {
		t.Errorf("second load: %q %v, want %q", b, err, a)
	}
	if other, _ := LoadOrCreateSecret(filepath.Join(t.TempDir(), "x")); other == a {
		t.Error("two secrets are the same")
	}
	os.WriteFile(path, []byte("short\n"), 0o600)
	if _, err := LoadOrCreateSecret(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a short secret: %v, want an error naming the file", err)
	}
}

// CAFile returns the file's new content once it changed, and keeps the
// last good content while the file is missing or not a certificate.
func TestCAFileFollowsTheFile(t *testing.T) {
	first, second := FilesIn(t.TempDir()), FilesIn(t.TempDir())
	for _, f := range []Files{first, second} {
		if _, _, err := EnsureSelfSigned(filepath.Dir(f.CA), []string{"localhost"}, year); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	if _, err := NewCAFile(path); err == nil {
		t.Fatal("NewCAFile of a missing file: no error")
	}
	if err := os.WriteFile(path, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCAFile(path); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("NewCAFile of a file that is no certificate: %v", err)
	}
	if err := os.WriteFile(path, []byte(read(t, first.CA)), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := NewCAFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(ca.PEM()); got != read(t, first.CA) {
		t.Fatalf("PEM() = %q, want the file's", got)
	}
	if err := os.WriteFile(path, []byte(read(t, second.CA)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := string(ca.PEM()); got != read(t, second.CA) || ca.Err() != nil {
		t.Fatalf("after the file changed: PEM() = %q (%v), want the new CA", got, ca.Err())
	}
	if err := os.WriteFile(path, []byte("-----BEGIN CERTIFICATE-----\ntruncat"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := string(ca.PEM()); got != read(t, second.CA) || ca.Err() == nil {
		t.Fatalf("a broken file: PEM() = %q (%v), want the last good CA and an error", got, ca.Err())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := string(ca.PEM()); got != read(t, second.CA) || ca.Err() == nil {
		t.Fatalf("a removed file: PEM() = %q (%v), want the last good CA and an error", got, ca.Err())
	}
}
