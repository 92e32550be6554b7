package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// MaxBodyBytes bounds an AdmissionReview the handler reads: a pod's
// object and old object, each at most the API server's 3 MiB, with room.
const MaxBodyBytes = 8 << 20

// Path is where the zone serves the webhook.
const Path = "/inject"

// Namespaces finds a pod's namespace by name (a lister of the zone's
// informers, or the API).
type Namespaces interface {
	Get(ctx context.Context, name string) (*corev1.Namespace, error)
}

// APINamespaces reads namespaces from the API server (RBAC: get on
// namespaces).
type APINamespaces struct {
	Client corev1client.NamespaceInterface
}

// Get reads namespace name.
func (a APINamespaces) Get(ctx context.Context, name string) (*corev1.Namespace, error) {
	return a.Client.Get(ctx, name, metav1.GetOptions{})
}

// Handler answers the API server's AdmissionReview v1 requests for pods
// with the JSON Patch of Mutate. It has no side effects, so dry-run
// requests are answered like any other.
type Handler struct {
	cfg        Config
	namespaces Namespaces
	log        *slog.Logger
}

// NewHandler returns the webhook's handler; cfg is validated.
func NewHandler(cfg Config, namespaces Namespaces, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sidecar injector: %w", err)
	}
	if namespaces == nil {
		return nil, errors.New("sidecar injector: no namespace lookup given")
	}
	return &Handler{cfg: cfg, namespaces: namespaces, log: log.With("component", "injector")}, nil
}

var podKind = metav1.GroupVersionKind{Group: "", Version: "v1", Kind: "Pod"}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the sidecar injector takes an AdmissionReview by POST", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		http.Error(w, fmt.Sprintf("content type %q is not accepted: send an AdmissionReview as application/json", r.Header.Get("Content-Type")),
			http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("the AdmissionReview is larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := decodeReview(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	review.Response = h.admit(r.Context(), review.Request)
	review.Response.UID = review.Request.UID
	review.Request = nil
	out, err := json.Marshal(review)
	if err != nil {
		http.Error(w, "encoding the AdmissionReview response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// decodeReview parses an AdmissionReview v1 with a request.
func decodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, fmt.Errorf("the body is not an AdmissionReview: %w", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("apiVersion %q kind %q: send an AdmissionReview of %s (admissionReviewVersions: [v1])",
			review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	}
	if review.Request == nil {
		return nil, errors.New("the AdmissionReview has no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("the AdmissionReview's request has no uid")
	}
	return &review, nil
}

// admit decides on one request. Only a pod's creation is mutated: a pod's
// containers cannot change afterwards, so any other operation is allowed
// as it is (and an injected pod would get no patch anyway).
func (h *Handler) admit(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Kind != podKind || req.SubResource != "" {
		return &admissionv1.AdmissionResponse{Allowed: true, Warnings: []string{fmt.Sprintf(
			"atoll's sidecar injector mutates pods only, not %s %s%s: limit the webhook's rules to pods, operation CREATE",
			req.Kind.String(), req.Resource.Resource, subresource(req.SubResource))}}
	}
	if req.Operation != admissionv1.Create {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(http.StatusBadRequest, fmt.Sprintf("the request's object is not a Pod: %v", err))
	}
	ns, err := h.namespaces.Get(ctx, req.Namespace)
	if err != nil {
		h.log.Warn("reading a pod's namespace", "namespace", req.Namespace, "error", err)
		return deny(http.StatusInternalServerError, fmt.Sprintf("atoll's sidecar injector cannot read namespace %q: %v", req.Namespace, err))
	}
	patch, err := Mutate(h.cfg, ns, &pod)
	if err != nil {
		if d, ok := errors.AsType[*Denial](err); ok {
			return deny(http.StatusBadRequest, d.Message)
		}
		return deny(http.StatusInternalServerError, err.Error())
	}
	if patch == nil {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		return deny(http.StatusInternalServerError, fmt.Sprintf("encoding the patch: %v", err))
	}
	pt := admissionv1.PatchTypeJSONPatch
	return &admissionv1.AdmissionResponse{Allowed: true, PatchType: &pt, Patch: raw}
}

func subresource(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	reason := metav1.StatusReasonBadRequest
	if code == http.StatusInternalServerError {
		reason = metav1.StatusReasonInternalError
	}
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg}}
}
