package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// namespaceMap is a Namespaces over a map; a missing name is an error.
type namespaceMap map[string]*corev1.Namespace

func (m namespaceMap) Get(_ context.Context, name string) (*corev1.Namespace, error) {
	if ns, ok := m[name]; ok {
		return ns, nil
	}
	return nil, fmt.Errorf("namespace %q not found", name)
}

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	h, err := NewHandler(testConfig(), namespaceMap{"shop": meshNamespace()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func review(t *testing.T, op admissionv1.Operation, namespace string, kind metav1.GroupVersionKind, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	dry := true
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("req-1"), Kind: kind, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: op, Object: runtime.RawExtension{Raw: raw}, DryRun: &dry,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(t *testing.T, h http.Handler, body []byte, contentType string) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response %s: %v", rec.Body, err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Request != nil {
		t.Fatalf("response %s is not an AdmissionReview v1 with a response only", rec.Body)
	}
	if out.Response.UID != "req-1" {
		t.Errorf("response uid = %q, want the request's", out.Response.UID)
	}
	return rec, out.Response
}

func TestHandlerAdmits(t *testing.T) {
	h := newTestHandler(t)
	gateway := newPod(map[string]string{"atoll.io/gateway": "enabled"})
	gateway.Namespace = "" // as in a request for a pod of a Deployment

	t.Run("gateway created", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Create, "shop", podKind, gateway), "application/json")
		if resp == nil || !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("response = %+v, want allowed with a JSON patch", resp)
		}
		var patch []PatchOp
		if err := json.Unmarshal(resp.Patch, &patch); err != nil {
			t.Fatal(err)
		}
		got := apply(t, gateway, patch)
		init := container(got.Spec.InitContainers, InitContainerName)
		if init == nil || !strings.Contains(strings.Join(init.Args, " "), "--redirect-inbound=false") {
			t.Errorf("init container = %+v, want inbound redirection off", init)
		}
		if sidecarOf(got) == nil {
			t.Errorf("no sidecar in %+v", got.Spec)
		}
	})
	t.Run("update passes unchanged", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Update, "shop", podKind, gateway), "application/json; charset=utf-8")
		if resp == nil || !resp.Allowed || resp.Patch != nil {
			t.Errorf("response = %+v, want allowed without a patch", resp)
		}
	})
	t.Run("pod out of the mesh", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Create, "shop", podKind,
			newPod(map[string]string{"atoll.io/sidecar-injection": "disabled"})), "application/json")
		if resp == nil || !resp.Allowed || resp.Patch != nil {
			t.Errorf("response = %+v, want allowed without a patch", resp)
		}
	})
	t.Run("not a pod", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Create, "shop",
			metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, map[string]any{}), "application/json")
		if resp == nil || !resp.Allowed || resp.Patch != nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "pods only") {
			t.Errorf("response = %+v, want allowed untouched with a warning", resp)
		}
	})
	t.Run("bad annotation denied", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Create, "shop", podKind,
			newPod(map[string]string{"atoll.io/gateway": "yes"})), "application/json")
		if resp == nil || resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusBadRequest ||
			!strings.Contains(resp.Result.Message, `annotation atoll.io/gateway: "yes" is not allowed`) {
			t.Errorf("response = %+v, want denied naming the annotation", resp)
		}
	})
	t.Run("unknown namespace denied", func(t *testing.T) {
		_, resp := post(t, h, review(t, admissionv1.Create, "gone", podKind, newPod(nil)), "application/json")
		if resp == nil || resp.Allowed || resp.Result.Code != http.StatusInternalServerError ||
			!strings.Contains(resp.Result.Message, `cannot read namespace "gone"`) {
			t.Errorf("response = %+v, want denied naming the namespace", resp)
		}
	})
}

func TestHandlerRefusesBadRequests(t *testing.T) {
	h := newTestHandler(t)
	valid := review(t, admissionv1.Create, "shop", podKind, newPod(nil))
	noUID := bytes.Replace(valid, []byte(`"uid":"req-1"`), []byte(`"uid":""`), 1)
	cases := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		code        int
		want        string
	}{
		{"GET", http.MethodGet, "application/json", nil, http.StatusMethodNotAllowed, "by POST"},
		{"YAML", http.MethodPost, "application/yaml", valid, http.StatusUnsupportedMediaType, `"application/yaml" is not accepted`},
		{"too large", http.MethodPost, "application/json", bytes.Repeat([]byte(" "), MaxBodyBytes+1), http.StatusRequestEntityTooLarge, "larger than"},
		{"not JSON", http.MethodPost, "application/json", []byte("{"), http.StatusBadRequest, "not an AdmissionReview"},
		{"v1beta1", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`),
			http.StatusBadRequest, "admissionReviewVersions: [v1]"},
		{"no request", http.MethodPost, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
			http.StatusBadRequest, "has no request"},
		{"no uid", http.MethodPost, "application/json", noUID, http.StatusBadRequest, "has no uid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, Path, bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("got %d %q, want %d saying %q", rec.Code, rec.Body, tc.code, tc.want)
			}
		})
	}
}

func TestNewHandlerValidates(t *testing.T) {
	cfg := testConfig()
	cfg.Zone = ""
	if _, err := NewHandler(cfg, namespaceMap{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "zone name") {
		t.Errorf("NewHandler = %v, want the zone name refused", err)
	}
	if _, err := NewHandler(testConfig(), nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewHandler without namespaces succeeded")
	}
}
