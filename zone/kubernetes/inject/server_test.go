package inject

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/atoll-mesh/atoll/internal/certs"
)

// TestServerFromFiles serves the webhook with a certificate from files
// (as cert-manager writes them) and answers an AdmissionReview over HTTPS.
func TestServerFromFiles(t *testing.T) {
	files, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler(t)
	srv, err := NewServer(ServeConfig{Addr: "127.0.0.1:0", CertFile: files.Cert, KeyFile: files.Key}, h, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil once ctx ends", err)
		}
	}()
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Post("https://"+addr.String()+Path, "application/json",
		bytes.NewReader(review(t, admissionv1.Create, "shop", podKind, newPod(nil))))
	if err != nil {
		t.Fatalf("POST over TLS with the files' CA: %v", err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || !out.Response.Allowed || out.Response.Patch == nil {
		t.Errorf("response %+v (%v), want the pod allowed with a patch", out.Response, err)
	}
}
