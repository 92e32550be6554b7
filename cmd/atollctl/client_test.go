package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// writeCA writes the certificate of a test TLS server as a PEM CA file.
func writeCA(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestClientOverTLS(t *testing.T) {
	meshes := fakePlane(planeGlobal, "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"total":0,"items":[]}`))
	}))
	secure := httptest.NewTLSServer(meshes)
	defer secure.Close()
	plain := httptest.NewServer(meshes)
	defer plain.Close()
	ca := writeCA(t, secure)
	other, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, 60*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := other.CA
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)

	cases := []struct {
		name, url, caFile, envCAFile string
		want                         string // "" for success
	}{
		{"the server's CA", secure.URL, ca, "", ""},
		{"the server's CA from the environment", secure.URL, "", ca, ""},
		{"the flag before the environment", secure.URL, ca, otherCA, ""},
		{"the environment's CA is for https:// only", plain.URL, "", ca, ""},
		{"the environment's wrong CA", secure.URL, "", otherCA, "not signed by the CA in ATOLL_API_CA_FILE"},
		{"no CA file: the system's roots do not know it", secure.URL, "", "", "pass --api-ca-file"},
		{"another CA", secure.URL, otherCA, "", "not signed by the CA in --api-ca-file"},
		{"a name the certificate does not cover", strings.Replace(secure.URL, "127.0.0.1", "localhost", 1), ca, "", "does not cover the host"},
		{"a CA file that holds no certificate", secure.URL, notPEM, "", "holds no PEM certificate"},
		{"a CA file with an http:// URL", plain.URL, ca, "", "is not https://"},
		{"https:// to a plaintext API", strings.Replace(plain.URL, "http://", "https://", 1), "", "", "serves plaintext HTTP"},
		{"http:// to a TLS API", strings.Replace(secure.URL, "https://", "http://", 1), "", "", "serves HTTPS: use --api-url https://"},
		{"plaintext", plain.URL, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := &client{baseURL: c.url, timeout: 10 * time.Second, caFile: c.caFile, envCAFile: c.envCAFile}
			_, _, err := cl.do(context.Background(), http.MethodGet, "/meshes", nil)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("GET /meshes: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("GET /meshes: %v, want an error saying %q", err, c.want)
			}
		})
	}
}
