package zone

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a CA that issues certificates for the tests of xDS
// certificate files.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string, parent *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue writes a certificate for localhost valid from notBefore to
// notAfter, for usage, and its key into dir.
func (ca *testCA) issue(t *testing.T, dir string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "atoll-zone-xds"},
		DNSNames: []string{"localhost"}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeTestPEM(t, certFile, "CERTIFICATE", der)
	writeTestPEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func (ca *testCA) write(t *testing.T, path string) string {
	t.Helper()
	writeTestPEM(t, path, "CERTIFICATE", ca.cert.Raw)
	return path
}

func writeTestPEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestXDSCertificateFiles: the zone serves xDS from a certificate, key
// and CA in files only when they make a server sidecars accept, and
// refuses each other case naming the setting and what to do.
func TestXDSCertificateFiles(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "xds-ca", nil)
	other := newTestCA(t, "other-ca", nil)

	good, expired, early, client, intermediate := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	certFile, keyFile := ca.issue(t, good, now.Add(-time.Minute), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	caFile := ca.write(t, filepath.Join(good, "ca.crt"))
	otherCA := other.write(t, filepath.Join(good, "other-ca.crt"))
	_, otherKey := other.issue(t, t.TempDir(), now.Add(-time.Minute), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	expiredCert, expiredKey := ca.issue(t, expired, now.Add(-2*time.Hour), now.Add(-time.Hour), x509.ExtKeyUsageServerAuth)
	earlyCert, earlyKey := ca.issue(t, early, now.Add(time.Hour), now.Add(2*time.Hour), x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, client, now.Add(-time.Minute), now.Add(time.Hour), x509.ExtKeyUsageClientAuth)
	// tls.crt holding the certificate and an intermediate CA, ca.crt the
	// root, as issuers with an intermediate write them.
	mid := newTestCA(t, "xds-intermediate", ca)
	chainCert, chainKey := mid.issue(t, intermediate, now.Add(-time.Minute), now.Add(time.Hour), x509.ExtKeyUsageServerAuth)
	leafPEM, err := os.ReadFile(chainCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainCert, append(leafPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mid.cert.Raw})...), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(good, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := func(cert, key, ca string) func(*XDS) {
		return func(x *XDS) { x.TLS, x.TLSCert, x.TLSKey, x.TLSCA = true, cert, key, ca }
	}

	tests := []struct {
		name string
		edit func(*XDS)
		// want are substrings of the error; none means the files are fine.
		want []string
	}{
		{"no files", func(*XDS) {}, nil},
		{"a certificate, its key and its CA", files(certFile, keyFile, caFile), nil},
		{"a chain through an intermediate", files(chainCert, chainKey, caFile), nil},
		{"no key", files(certFile, "", caFile), []string{"xds.tlsKey: is required", "give --xds-tls-key too"}},
		{"no CA", files(certFile, keyFile, ""), []string{"xds.tlsCA: is required", "give --xds-tls-ca too"}},
		{"a CA only", files("", "", caFile), []string{"xds.tlsCert: is required", "xds.tlsKey: is required"}},
		{"files without xds.tls", func(x *XDS) { files(certFile, keyFile, caFile)(x); x.TLS = false }, []string{"xds.tlsCert", "xds.tls is off", "add --xds-tls"}},
		{"files with names to generate", func(x *XDS) { files(certFile, keyFile, caFile)(x); x.TLSSANs = []string{"zone.example"} },
			[]string{"xds.tlsSANs", "drop --xds-tls-san"}},
		{"certificate missing", files(filepath.Join(good, "missing.crt"), keyFile, caFile), []string{"xds.tlsCert: open", "missing.crt"}},
		{"key missing", files(certFile, filepath.Join(good, "missing.key"), caFile), []string{"xds.tlsKey: open"}},
		{"CA missing", files(certFile, keyFile, filepath.Join(good, "missing-ca.crt")), []string{"xds.tlsCA: open"}},
		{"certificate not PEM", files(notPEM, keyFile, caFile), []string{"xds.tlsCert:", "holds no PEM certificate", "tls.crt"}},
		{"key of another certificate", files(certFile, otherKey, caFile), []string{"xds.tlsKey:", "is not the key of the certificate", "tls.key"}},
		{"certificate expired", files(expiredCert, expiredKey, caFile), []string{"xds.tlsCert:", "not now", "renew it"}},
		{"certificate not valid yet", files(earlyCert, earlyKey, caFile), []string{"xds.tlsCert:", "not now", "clock"}},
		{"CA not PEM", files(certFile, keyFile, notPEM), []string{"xds.tlsCA:", "holds no PEM certificate", "ca.crt"}},
		{"CA that did not sign it", files(certFile, keyFile, otherCA), []string{"xds.tlsCA:", "does not verify", "sidecars would refuse it"}},
		{"a client certificate", files(clientCert, clientKey, caFile), []string{"xds.tlsCA:", "does not verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Zone = "zone-1"
			tt.edit(&c.XDS)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.want[0])
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestInjectedSidecarsGetTheXDSCA: sidecars are given the CA of the
// certificate the zone serves (the one in files when given), unless the
// injector names its own.
func TestInjectedSidecarsGetTheXDSCA(t *testing.T) {
	c := Default()
	c.Zone, c.DataDir = "zone-1", "/var/lib/atoll/zone"
	inj := c.Kubernetes.Injector
	if got := inj.config(c.Zone, c.xdsCAFile()).XDSCAFile; got != "" {
		t.Errorf("plaintext xDS: sidecars get CA %q, want none", got)
	}
	c.XDS.TLS = true
	if got, want := inj.config(c.Zone, c.xdsCAFile()).XDSCAFile, "/var/lib/atoll/zone/xds-tls/kds-ca.pem"; got != want {
		t.Errorf("generated xDS certificate: sidecars get CA %q, want %q", got, want)
	}
	c.XDS.TLSCert, c.XDS.TLSKey, c.XDS.TLSCA = "/tls/tls.crt", "/tls/tls.key", "/tls/ca.crt"
	if got := inj.config(c.Zone, c.xdsCAFile()).XDSCAFile; got != "/tls/ca.crt" {
		t.Errorf("xDS certificate from files: sidecars get CA %q, want /tls/ca.crt", got)
	}
	inj.XDSCAFile = "/bundle/ca.pem"
	if got := inj.config(c.Zone, c.xdsCAFile()).XDSCAFile; got != "/bundle/ca.pem" {
		t.Errorf("injector's own CA file: sidecars get CA %q, want /bundle/ca.pem", got)
	}
}
