package inject

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func caPEM(t *testing.T, name string, notAfter time.Time) []byte {
	t.Helper()
	return caPEMNamed(t, name, notAfter.Add(-48*time.Hour), notAfter)
}

func caPEMFrom(t *testing.T, notBefore, notAfter time.Time) []byte {
	t.Helper()
	return caPEMNamed(t, "restart", notBefore, notAfter)
}

func caPEMNamed(t *testing.T, name string, notBefore, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestWithCA(t *testing.T) {
	now := time.Now()
	ours := caPEM(t, "ours", now.Add(time.Hour))
	other := caPEM(t, "other replica", now.Add(time.Hour))
	expired := caPEM(t, "expired", now.Add(-time.Hour))

	got, changed := withCA(nil, ours, now)
	if !changed || !bytes.Equal(got, ours) {
		t.Errorf("empty bundle: %q %v, want ours", got, changed)
	}
	bundle := append(append(append([]byte{}, other...), expired...), []byte("garbage\n")...)
	got, changed = withCA(bundle, ours, now)
	if !changed || !bytes.Equal(got, append(append([]byte{}, ours...), other...)) {
		t.Errorf("bundle of another replica's CA and an expired one: got %q, want ours then the other", got)
	}
	again, changed := withCA(got, ours, now)
	if changed || !bytes.Equal(again, got) {
		t.Error("a bundle holding our CA was changed")
	}
	// Restarts that each made a new CA: the newest are kept.
	var many []byte
	for i := range 2 * maxBundleCAs {
		many = append(many, caPEMFrom(t, now.Add(time.Duration(i)*time.Minute-time.Hour), now.Add(time.Hour))...)
	}
	got, _ = withCA(many, ours, now)
	if n := bytes.Count(got, []byte("BEGIN CERTIFICATE")); n != maxBundleCAs {
		t.Errorf("bundle of %d CAs after adding ours to %d, want %d", n, 2*maxBundleCAs, maxBundleCAs)
	}
	var second *x509.Certificate
	if b, rest := pem.Decode(got); b != nil {
		if b2, _ := pem.Decode(rest); b2 != nil {
			second, _ = x509.ParseCertificate(b2.Bytes)
		}
	}
	if want := now.Add(time.Duration(2*maxBundleCAs-1)*time.Minute - time.Hour).Truncate(time.Second); second == nil || !second.NotBefore.Equal(want) {
		t.Errorf("the CA after ours is %v, want the newest (NotBefore %v)", second, want)
	}
	if _, changed := withCA(other, []byte("not PEM"), now); changed {
		t.Error("a CA that is not PEM changed the bundle")
	}
}

func TestServeConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  ServeConfig
		want string
	}{
		{ServeConfig{Addr: ":5443", Dir: "/d"}, ""},
		{ServeConfig{Addr: ":5443", CertFile: "c", KeyFile: "k"}, ""},
		{ServeConfig{Addr: "5443", Dir: "/d"}, `injector address "5443" is not host:port`},
		{ServeConfig{Addr: ":5443", CertFile: "c"}, "both the certificate and the key file"},
		{ServeConfig{Addr: ":5443"}, "no directory"},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
