package kubernetes_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// fakeReviews accepts every token starting "ok." as pod shop/web-a's and
// refuses the others, counting reviews per token.
type fakeReviews struct{ calls map[string]int }

func (f *fakeReviews) Create(_ context.Context, r *authenticationv1.TokenReview, _ metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	f.calls[r.Spec.Token]++
	out := r.DeepCopy()
	if len(r.Spec.Token) < 3 || r.Spec.Token[:3] != "ok." {
		out.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		return out, nil
	}
	out.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: r.Spec.Audiences,
		User: authenticationv1.UserInfo{Username: "system:serviceaccount:shop:web", Extra: map[string]authenticationv1.ExtraValue{
			"authentication.kubernetes.io/pod-name": {"web-a"}, "authentication.kubernetes.io/pod-uid": {"uid-a"}}}}
	return out, nil
}

// jwt is a token the fake accepts whose exp claim is exp.
func jwt(exp time.Time) string {
	claims := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"exp":%d}`, exp.Unix()))
	return "ok." + claims + ".sig"
}

// Accepted reviews are remembered for the TTL but never past the token's
// exp; refused tokens are asked about every time.
func TestProxyAuthenticatorRemembersReviews(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	reviews := &fakeReviews{calls: map[string]int{}}
	auth, err := kubernetes.NewProxyAuthenticator(kubernetes.ProxyAuthConfig{Reviews: reviews,
		PodUID:   func(ns, name string) (types.UID, bool) { return "uid-a", ns == "shop" && name == "web-a" },
		CacheTTL: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	dp := &resource.Resource{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: kubernetes.DataplaneName("shop", "web-a"),
		Labels: map[string]string{resource.NamespaceLabel: "shop", resource.OriginLabel: resource.OriginZone}}}
	if !auth.Covers(dp) {
		t.Fatal("a pod's Dataplane is not covered")
	}
	check := func(token string, want codes.Code) {
		t.Helper()
		if err := auth.Authenticate(context.Background(), token, dp); status.Code(err) != want {
			t.Fatalf("Authenticate at %s: %v, want %s", now.Format(time.TimeOnly), err, want)
		}
	}
	long, short := jwt(now.Add(time.Hour)), jwt(now.Add(10*time.Second))
	check(long, codes.OK)
	check(long, codes.OK)
	check(short, codes.OK)
	if reviews.calls[long] != 1 || reviews.calls[short] != 1 {
		t.Errorf("reviews %v, want one per token", reviews.calls)
	}
	now = now.Add(30 * time.Second) // past short's exp, within the TTL
	check(short, codes.OK)
	check(long, codes.OK)
	if reviews.calls[short] != 2 || reviews.calls[long] != 1 {
		t.Errorf("reviews %v, want short reviewed again past its exp, long still remembered", reviews.calls)
	}
	now = now.Add(time.Minute) // past the TTL
	check(long, codes.OK)
	if reviews.calls[long] != 2 {
		t.Errorf("reviews %v, want long reviewed again past the TTL", reviews.calls)
	}
	check("forged", codes.Unauthenticated)
	check("forged", codes.Unauthenticated)
	if reviews.calls["forged"] != 2 {
		t.Errorf("a refused token was reviewed %d times for 2 checks, want 2 (refusals are not remembered)", reviews.calls["forged"])
	}
	// The cache is bounded: with room for one review, a second token
	// pushes the first out.
	small, err := kubernetes.NewProxyAuthenticator(kubernetes.ProxyAuthConfig{Reviews: reviews, CacheSize: 1,
		PodUID: func(string, string) (types.UID, bool) { return "uid-a", true }, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a, b := jwt(now.Add(time.Hour)), jwt(now.Add(time.Hour+time.Second))
	for _, token := range []string{a, a, b, a} {
		if err := small.Authenticate(context.Background(), token, dp); err != nil {
			t.Fatal(err)
		}
	}
	if reviews.calls[a] != 2 || reviews.calls[b] != 1 {
		t.Errorf("with room for one review: %d reviews of the first token, %d of the second; want 2 and 1", reviews.calls[a], reviews.calls[b])
	}
	if auth.Covers(&resource.Resource{Meta: resource.Meta{Type: resource.DataplaneType, Name: "vm-1",
		Labels: map[string]string{resource.OriginLabel: resource.OriginZone}}}) {
		t.Error("a Dataplane registered through the API is covered; it keeps the zone's tokens")
	}
}
