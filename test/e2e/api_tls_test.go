package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// apiCAFile is the CA a control plane started with --api-tls keeps.
func (p *process) apiCAFile() string { return filepath.Join(p.dataDir, "api-tls", "kds-ca.pem") }

// httpsClient trusts only the CA in caFile.
func httpsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// startTLSGlobal is startGlobal for a global serving its API over TLS with
// a generated certificate.
func startTLSGlobal(t *testing.T, dataDir string, args ...string) *process {
	t.Helper()
	args = append([]string{"global", "--data-dir", dataDir, "--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--kds-addr", "127.0.0.1:0", "--api-tls"}, args...)
	return startTLSAtoll(t, dataDir, filepath.Join(dataDir, "api-tls", "kds-ca.pem"), args...)
}

// startTLSAtoll is startAtoll for a control plane serving its API over
// TLS: its URL (from the start log) must be https://, and /readyz is polled
// over TLS verified with the CA in caFile (a generated certificate's CA
// appears there during the start).
func startTLSAtoll(t *testing.T, dataDir, caFile string, args ...string) *process {
	t.Helper()
	p := startAtollUnready(t, args...)
	p.dataDir = dataDir
	if !strings.HasPrefix(p.apiURL, "https://") {
		t.Fatalf("atoll %v logged apiURL %q, want https://\n%s", args, p.apiURL, p.logs)
	}
	p.waitReady(func() (*http.Client, error) { return httpsClient(caFile) })
	return p
}

// A global started with --api-tls serves its API over TLS only, with a CA
// anyone can fetch at /api-ca.pem; atollctl verifies with it, and says what
// to pass when it cannot verify.
func TestRESTOverTLS(t *testing.T) {
	dir := t.TempDir()
	g := startTLSGlobal(t, dir)

	// A caller that does not trust the CA yet fetches it (trust on first
	// use; an operator may copy it from the data directory instead).
	tofu := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := tofu.Get(g.apiURL + "/api-ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	onDisk, err := os.ReadFile(g.apiCAFile())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(served, onDisk) {
		t.Fatalf("GET /api-ca.pem: %s %q, want the CA in %s", resp.Status, served, g.apiCAFile())
	}
	ca := filepath.Join(t.TempDir(), "api-ca.pem")
	if err := os.WriteFile(ca, served, 0o644); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "--api-ca-file", ca, "get", "meshes")
	if err != nil || !strings.Contains(out, "default") {
		t.Errorf("atollctl over https with the served CA: %v %q\n%s", err, errOut, out)
	}
	cmd := exec.Command(filepath.Join(binDir, "atollctl"), "--api-url", g.apiURL, "get", "zones")
	cmd.Env = append(os.Environ(), "ATOLL_API_CA_FILE="+ca)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("atollctl over https with the CA in ATOLL_API_CA_FILE: %v\n%s", err, out)
	}

	plain := strings.Replace(g.apiURL, "https://", "http://", 1)
	if _, errOut, err := atollctl(t, "", "--api-url", plain, "get", "meshes"); err == nil || !strings.Contains(errOut, "serves HTTPS: use --api-url "+g.apiURL) {
		t.Errorf("atollctl over plain http to the TLS API: %v %q, want it refused, naming the https:// URL", err, errOut)
	}
	status, body := call(t, "GET", plain+"/meshes", "")
	if status != http.StatusBadRequest || strings.Contains(body, "default") {
		t.Errorf("plain HTTP to the TLS API: %d %q, want 400 and no meshes", status, body)
	}

	// The KDS CA is another CA: it did not sign the API's certificate.
	wrongCA := g.caFile()
	if _, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "--api-ca-file", wrongCA, "get", "meshes"); err == nil ||
		!strings.Contains(errOut, "not signed by the CA in --api-ca-file") || !strings.Contains(errOut, "/api-ca.pem") {
		t.Errorf("atollctl with a wrong CA: %v %q, want it refused, saying to pass the CA from /api-ca.pem", err, errOut)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "get", "meshes"); err == nil || !strings.Contains(errOut, "pass --api-ca-file") {
		t.Errorf("atollctl without a CA: %v %q, want it refused, saying to pass --api-ca-file", err, errOut)
	}

	// The token is accepted over TLS from any Host, as from another machine.
	token, err := os.ReadFile(filepath.Join(dir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpsClient(ca)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", g.apiURL+"/meshes", nil)
	req.Host = "atoll.example"
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /meshes over TLS with the token and Host atoll.example: %s, want 200", resp.Status)
	}
}

// Serving the API in plaintext beyond loopback needs an explicit opt-in.
func TestRESTRefusesPlaintextBeyondLoopback(t *testing.T) {
	out, err := runAtoll(t, nil, "global", "--data-dir", t.TempDir(), "--api-addr", "0.0.0.0:0")
	if err == nil || !strings.Contains(out, "apiAddr") || !strings.Contains(out, "--api-tls") || !strings.Contains(out, "--api-insecure") {
		t.Errorf("atoll global --api-addr 0.0.0.0:0 without TLS: %v\n%s\nwant it refused, naming apiAddr, --api-tls and --api-insecure", err, out)
	}
}

// A web page that rebinds its own name to 127.0.0.1 reaches the API from
// loopback but with its name as Host: refused unless it has the token.
// Bodies over the limit are refused with the limit named.
func TestRESTHostCheckAndLimits(t *testing.T) {
	dir := t.TempDir()
	g := startGlobal(t, dir)
	port := g.apiURL[strings.LastIndex(g.apiURL, ":")+1:]
	token, err := os.ReadFile(filepath.Join(dir, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(host, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", g.apiURL+"/meshes", nil)
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	cases := []struct {
		host, auth string
		want       int
		says       string
	}{
		{"127.0.0.1:" + port, "", http.StatusOK, "default"},
		{"localhost:" + port, "", http.StatusOK, "default"},
		{"attacker.example:" + port, "", http.StatusForbidden, `attacker.example:` + port + `\" is not a loopback name`},
		{"attacker.example", "", http.StatusForbidden, "Authorization: Bearer TOKEN"},
		{"attacker.example:" + port, "Bearer wrong-token-wrong-token", http.StatusUnauthorized, "not this control plane's"},
		{"attacker.example:" + port, "Bearer " + strings.TrimSpace(string(token)), http.StatusOK, "default"},
	}
	for _, c := range cases {
		if status, body := get(c.host, c.auth); status != c.want || !strings.Contains(body, c.says) {
			t.Errorf("GET /meshes from 127.0.0.1 with Host %q (token %t): %d %s, want %d saying %q", c.host, c.auth != "", status, body, c.want, c.says)
		}
	}

	// Over the resources' own limit, and over the server's.
	for _, c := range []struct {
		size int
		says string
	}{{2 << 20, "larger than 1 MiB"}, {5 << 20, "larger than 4 MiB"}} {
		status, body := call(t, "PUT", g.apiURL+"/meshes/big", strings.Repeat(" ", c.size))
		if status != http.StatusRequestEntityTooLarge || !strings.Contains(body, c.says) {
			t.Errorf("PUT of %d bytes: %d %s, want 413 saying %q", c.size, status, body, c.says)
		}
	}
	if status, body := call(t, "GET", g.apiURL+"/meshes/big", ""); status != http.StatusNotFound {
		t.Errorf("after the refused PUTs, GET /meshes/big: %d %s, want 404", status, body)
	}
}

// A zone serves its API over TLS from certificate files of the operator's.
func TestRESTOverTLSFromFilesOnAZone(t *testing.T) {
	dir := t.TempDir()
	files, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, 60*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	z := startTLSAtoll(t, dir, files.CA, "zone", "--zone", "zone-1", "--mode", "universal", "--data-dir", dir,
		"--dns-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--api-tls-cert", files.Cert, "--api-tls-key", files.Key)
	if out, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "--api-ca-file", files.CA, "get", "meshes"); err != nil || !strings.Contains(out, "default") {
		t.Errorf("atollctl over https with the zone's CA: %v %q\n%s", err, errOut, out)
	}
	if status, body := call(t, "GET", strings.Replace(z.apiURL, "https://", "http://", 1)+"/meshes", ""); status != http.StatusBadRequest {
		t.Errorf("plain HTTP to the zone's TLS API: %d %q, want 400", status, body)
	}
}
