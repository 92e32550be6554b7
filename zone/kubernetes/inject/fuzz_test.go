package inject

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzHandler feeds the handler arbitrary bodies: it answers each with a
// 400 or with an AdmissionReview response whose patch, if any, is JSON.
func FuzzHandler(f *testing.F) {
	h, err := NewHandler(testConfig(), namespaceMap{"shop": meshNamespace()}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":{"metadata":{"annotations":{"atoll.io/exclude-inbound-ports":"1,2"}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":null}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest:
		case http.StatusOK:
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("200 with %s: %v", rec.Body, err)
			}
			if out.Response.Patch != nil && !json.Valid(out.Response.Patch) {
				t.Fatalf("patch %s is not JSON", out.Response.Patch)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
