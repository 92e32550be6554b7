package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// ProxyAudience is the audience of the ServiceAccount tokens sidecars
// present to the zone's xDS server (the injected atoll-token volume).
const ProxyAudience = "atoll-xds"

// The extra fields of a TokenReview of a pod-bound ServiceAccount token.
const (
	podNameExtra = "authentication.kubernetes.io/pod-name"
	podUIDExtra  = "authentication.kubernetes.io/pod-uid"
)

// Defaults of ProxyAuthConfig.
const (
	DefaultProxyAuthCacheSize = 10000
	DefaultProxyAuthCacheTTL  = 5 * time.Minute
	DefaultProxyAuthTimeout   = 10 * time.Second
)

// TokenReviewer creates TokenReviews: a clientset's
// AuthenticationV1().TokenReviews().
type TokenReviewer interface {
	Create(ctx context.Context, review *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
}

// ProxyAuthConfig configures a ProxyAuthenticator.
type ProxyAuthConfig struct {
	Reviews TokenReviewer
	// PodUID returns the UID of the pod namespace/name as the zone knows
	// it (Controller.PodUID), false when it knows no such pod.
	PodUID func(namespace, name string) (types.UID, bool)
	// Audience the tokens must be issued for; ProxyAudience when empty.
	Audience string
	// CacheSize bounds how many reviewed tokens are remembered, CacheTTL
	// for how long (never past a token's expiry); Timeout bounds one
	// TokenReview. Zero takes the defaults above.
	CacheSize int
	CacheTTL  time.Duration
	Timeout   time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// ProxyAuthenticator checks that the ServiceAccount token a sidecar
// presents on its xDS stream is its own pod's: the TokenReview of the
// token (audience atoll-xds) names a ServiceAccount of the Dataplane's
// namespace and, in its pod-name and pod-uid extras, the pod the Dataplane
// was made from. It satisfies xds.ProxyAuthenticator for the Dataplanes
// the Controller writes.
//
// Tokens the API server accepted are remembered by their SHA-256 for a
// short while (CacheTTL, never past the token's own expiry), so that a
// reconnect storm does not become a TokenReview storm; tokens it refused
// are not remembered, and the pod's UID is compared on every check, so a
// deleted pod's token stops working once the zone sees the deletion.
type ProxyAuthenticator struct {
	cfg ProxyAuthConfig

	mu      sync.Mutex
	reviews map[[sha256.Size]byte]review
}

// Audience is the audience the tokens must be issued for.
func (a *ProxyAuthenticator) Audience() string { return a.cfg.Audience }

// review is what the API server said of a token it accepted.
type review struct {
	namespace, serviceAccount string
	podName, podUID           string
	until                     time.Time
}

// NewProxyAuthenticator returns an authenticator for cfg.
func NewProxyAuthenticator(cfg ProxyAuthConfig) (*ProxyAuthenticator, error) {
	if cfg.Reviews == nil || cfg.PodUID == nil {
		return nil, errors.New("proxy authenticator: Reviews and PodUID are required")
	}
	if cfg.Audience == "" {
		cfg.Audience = ProxyAudience
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultProxyAuthCacheSize
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultProxyAuthCacheTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultProxyAuthTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ProxyAuthenticator{cfg: cfg, reviews: map[[sha256.Size]byte]review{}}, nil
}

// Covers reports whether dp was made from a pod (by the Controller): its
// proxy must present that pod's token. Dataplanes registered through the
// zone's API keep the zone's tokens.
func (a *ProxyAuthenticator) Covers(dp *resource.Resource) bool {
	return dp.Meta.Type == resource.DataplaneType && ours(dp)
}

// Authenticate checks that bearer is a token of the pod dp was made from.
func (a *ProxyAuthenticator) Authenticate(ctx context.Context, bearer string, dp *resource.Resource) error {
	r, err := a.review(ctx, bearer)
	if err != nil {
		return err
	}
	namespace := dp.Meta.Labels[resource.NamespaceLabel]
	who := fmt.Sprintf("ServiceAccount %s/%s", r.namespace, r.serviceAccount)
	if r.podName == "" {
		return status.Errorf(codes.PermissionDenied, "Dataplane %s: the token of %s is not bound to a pod: present the pod's projected ServiceAccount token (audience %s, the injected atoll-token volume), not a token made for the ServiceAccount alone",
			dp.Meta.Name, who, a.cfg.Audience)
	}
	who += fmt.Sprintf(" of pod %s/%s", r.namespace, r.podName)
	if r.namespace != namespace || DataplaneName(r.namespace, r.podName) != dp.Meta.Name {
		return status.Errorf(codes.PermissionDenied, "Dataplane %s (of a pod in namespace %s): the token is of %s, another pod: each sidecar presents its own pod's token and connects as its own Dataplane",
			dp.Meta.Name, namespace, who)
	}
	uid, ok := a.cfg.PodUID(r.namespace, r.podName)
	switch {
	case !ok:
		return status.Errorf(codes.PermissionDenied, "Dataplane %s: the token is of %s, which this zone does not know (deleted?): restart the pod's sidecar", dp.Meta.Name, who)
	case r.podUID == "" || string(uid) != r.podUID:
		return status.Errorf(codes.PermissionDenied, "Dataplane %s: the token is of %s with UID %q, but that pod is now UID %q (recreated): the new pod's sidecar must present its own token",
			dp.Meta.Name, who, r.podUID, uid)
	}
	return nil
}

// review is the API server's word on token: remembered when it accepted
// it, asked with a TokenReview otherwise.
func (a *ProxyAuthenticator) review(ctx context.Context, token string) (review, error) {
	key := sha256.Sum256([]byte(token))
	now := a.cfg.Now()
	a.mu.Lock()
	r, ok := a.reviews[key]
	a.mu.Unlock()
	if ok && now.Before(r.until) {
		return r, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	tr, err := a.cfg.Reviews.Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token: token, Audiences: []string{a.cfg.Audience}}}, metav1.CreateOptions{})
	if err != nil {
		return review{}, status.Errorf(codes.Unavailable, "checking the token with a TokenReview failed (the zone's ServiceAccount needs create on tokenreviews.authentication.k8s.io, see charts/atoll): %v", err)
	}
	st := tr.Status
	fix := fmt.Sprintf("present the pod's projected ServiceAccount token (audience %s, the injected atoll-token volume), current and unexpired", a.cfg.Audience)
	switch {
	case !st.Authenticated:
		why := st.Error
		if why == "" {
			why = "not authenticated"
		}
		return review{}, status.Errorf(codes.Unauthenticated, "the API server refused the token: %s: %s", why, fix)
	case !slices.Contains(st.Audiences, a.cfg.Audience):
		return review{}, status.Errorf(codes.Unauthenticated, "the token is for audiences %v, not %s: %s", st.Audiences, a.cfg.Audience, fix)
	}
	parts := strings.Split(st.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		return review{}, status.Errorf(codes.PermissionDenied, "the token is of user %q, not of a ServiceAccount: %s", st.User.Username, fix)
	}
	r = review{namespace: parts[2], serviceAccount: parts[3],
		podName: first(st.User.Extra[podNameExtra]), podUID: first(st.User.Extra[podUIDExtra]),
		until: now.Add(a.cfg.CacheTTL)}
	if exp, ok := expiry(token); ok && exp.Before(r.until) {
		r.until = exp
	}
	a.remember(key, r, now)
	return r, nil
}

// remember keeps r under key, making room by dropping expired reviews
// and then any: the cache saves TokenReviews, it is never needed.
func (a *ProxyAuthenticator) remember(key [sha256.Size]byte, r review, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reviews) >= a.cfg.CacheSize {
		for k, old := range a.reviews {
			if !now.Before(old.until) {
				delete(a.reviews, k)
			}
		}
	}
	for k := range a.reviews {
		if len(a.reviews) < a.cfg.CacheSize {
			break
		}
		delete(a.reviews, k)
	}
	a.reviews[key] = r
}

func first(values authenticationv1.ExtraValue) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// expiry reads the exp claim of a JWT the API server has just accepted
// (so its signature is checked); false when it has none.
func expiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}

// PodUID returns the UID of the pod namespace/name in the controller's
// cache (kept by Watch, on every replica), false when it has no such pod.
func (c *Controller) PodUID(namespace, name string) (types.UID, bool) {
	pod, err := c.pods.Pods(namespace).Get(name)
	if err != nil {
		return "", false
	}
	return pod.UID, true
}
