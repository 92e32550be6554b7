package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// serve starts a Server on a free loopback port until the test ends.
func serve(t *testing.T, h http.Handler, tlsCfg TLS) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Listen(ctx, ListenConfig{Addr: "127.0.0.1:0", Handler: h, TLS: tlsCfg, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// trusting is an HTTPS client that trusts the CA in caFile only.
func trusting(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// echoLength reads the body as a handler of the API does and answers with
// its length.
var echoLength = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"length": len(body)})
})

func TestListenBoundsTheBody(t *testing.T) {
	s := serve(t, echoLength, TLS{})
	cases := []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"at the limit", MaxBodySize, false, http.StatusOK},
		{"over the limit, length declared", MaxBodySize + 1, false, http.StatusRequestEntityTooLarge},
		{"over the limit, chunked", MaxBodySize + 1, true, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(make([]byte, c.size))
			if c.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			resp, err := http.Post(s.URL()+"/anything", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got ErrorBody
			json.NewDecoder(resp.Body).Decode(&got)
			if resp.StatusCode != c.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, got.Error, c.want)
			}
			if c.want == http.StatusRequestEntityTooLarge && !strings.Contains(got.Error, "larger than 4 MiB") {
				t.Errorf("413 says %q, want it to name the limit (4 MiB)", got.Error)
			}
		})
	}
}

func TestListenBoundsTheHeader(t *testing.T) {
	s := serve(t, echoLength, TLS{})
	req, _ := http.NewRequest("GET", s.URL()+"/anything", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d-byte header: %s, want 431", 2*MaxHeaderBytes, resp.Status)
	}
}

func TestListenServesAGeneratedCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "api-tls")
	s := serve(t, echoLength, TLS{Generate: true, Dir: dir, SANs: []string{"atoll.example"}})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL() = %s, want https://127.0.0.1:PORT", s.URL())
	}
	caFile := filepath.Join(dir, "kds-ca.pem")
	c := trusting(t, caFile)

	resp, err := c.Get(s.URL() + "/api-ca.pem")
	if err != nil {
		t.Fatalf("a client trusting the generated CA: %v", err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	onDisk, _ := os.ReadFile(caFile)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(served, onDisk) {
		t.Errorf("/api-ca.pem: %s %q, want the CA in %s", resp.Status, served, caFile)
	}
	if resp.TLS == nil || resp.TLS.PeerCertificates[0].VerifyHostname("atoll.example") != nil {
		t.Errorf("the certificate does not cover the SAN atoll.example")
	}

	// Another CA's client and a plaintext client are both turned away.
	other, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Hour*24*60)
	if err != nil {
		t.Fatal(err)
	}
	_, err = trusting(t, other.CA).Get(s.URL() + "/healthz")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client trusting another CA: %v, want an unknown authority error", err)
	}
	resp, err = http.Get("http://" + s.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plaintext to the TLS port: %s, want 400", resp.Status)
	}
}

func TestListenFollowsCertificateFiles(t *testing.T) {
	first, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Hour*24*60)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Hour*24*60)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	install := func(f certs.Files) {
		for src, dst := range map[string]string{f.Cert: certFile, f.Key: keyFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first)
	s := serve(t, echoLength, TLS{CertFile: certFile, KeyFile: keyFile})

	get := func(caFile, path string) (*http.Response, error) {
		c := trusting(t, caFile)
		defer c.CloseIdleConnections()
		resp, err := c.Get(s.URL() + path)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	if _, err := get(first.CA, "/healthz"); err != nil {
		t.Fatalf("the configured certificate: %v", err)
	}
	resp, err := get(first.CA, "/api-ca.pem")
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api-ca.pem with configured files: %v %v, want 404 (no generated CA)", resp, err)
	}
	install(second)
	if _, err := get(second.CA, "/healthz"); err != nil {
		t.Fatalf("the certificate replaced on disk is not served: %v", err)
	}
}

func TestListenRefusesAMissingCertificate(t *testing.T) {
	dir := t.TempDir()
	_, err := Listen(context.Background(), ListenConfig{Addr: "127.0.0.1:0", Handler: echoLength, Log: slog.New(slog.DiscardHandler),
		TLS: TLS{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: filepath.Join(dir, "nope-key.pem")}})
	if err == nil || !strings.Contains(err.Error(), "apiTLSCert") {
		t.Errorf("Listen with missing certificate files: %v, want an error naming apiTLSCert", err)
	}
}

func TestTLSCheck(t *testing.T) {
	cases := []struct {
		name     string
		tls      TLS
		addr     string
		insecure bool
		want     string // "" for valid
	}{
		{"plaintext on loopback", TLS{}, "127.0.0.1:5681", false, ""},
		{"plaintext on IPv6 loopback", TLS{}, "[::1]:5681", false, ""},
		{"plaintext on localhost", TLS{}, "localhost:5681", false, ""},
		{"plaintext on every interface", TLS{}, ":5681", false, "apiAddr"},
		{"plaintext on 0.0.0.0", TLS{}, "0.0.0.0:5681", false, "--api-insecure"},
		{"plaintext on a network address", TLS{}, "10.0.0.5:5681", false, "--api-tls"},
		{"plaintext accepted beyond loopback", TLS{}, ":5681", true, ""},
		{"generated beyond loopback", TLS{Generate: true}, ":5681", false, ""},
		{"files beyond loopback", TLS{CertFile: "c.pem", KeyFile: "k.pem"}, ":5681", false, ""},
		{"a certificate without its key", TLS{CertFile: "c.pem"}, "127.0.0.1:5681", false, "apiTLSKey"},
		{"generated and files", TLS{Generate: true, CertFile: "c.pem", KeyFile: "k.pem"}, ":5681", false, "choose one"},
		{"TLS and insecure", TLS{Generate: true}, ":5681", true, "apiInsecure"},
		{"SANs without a generated certificate", TLS{SANs: []string{"a.example"}}, "127.0.0.1:5681", false, "apiTLSSANs"},
		{"SANs", TLS{Generate: true, SANs: []string{"a.example", "10.0.0.5"}}, ":5681", false, ""},
		{"a malformed address is left to CheckListenAddr", TLS{}, "nowhere", false, ""},
		{"a host name is left to CheckListenAddr", TLS{}, "example.com:5681", false, ""},
		{"a SAN with a scheme", TLS{Generate: true, SANs: []string{"https://a.example"}}, ":5681", false, "apiTLSSANs[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.tls.Check(c.addr, c.insecure)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Check = %v, want an error naming %s", err, c.want)
			}
		})
	}
}
