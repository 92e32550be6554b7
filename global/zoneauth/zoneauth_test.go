package zoneauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/kds"
)

const prefix = "/atoll/zone-auth/"

// replica starts an Authority on client, following changes until the test ends.
func replica(t *testing.T, client *clientv3.Client) *Authority {
	t.Helper()
	a := New(Config{Client: client, Prefix: prefix, Registry: prometheus.NewRegistry()})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func withToken(token string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kds.TokenHeader, "Bearer "+token))
}

// authenticate does what the KDS server does: the token, then the zone the
// Hello names.
func authenticate(a *Authority, ctx context.Context, zone string) (context.Context, error) {
	cred, err := a.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return cred.Admit(zone)
}

func issue(t *testing.T, a *Authority, zone string) string {
	t.Helper()
	out, err := a.Issue(context.Background(), zone, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return out.Token
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %v, want it to say %q", err, msg)
	}
}

// waitCut waits until ctx ends and returns its cause.
func waitCut(t *testing.T, ctx context.Context, what string) error {
	t.Helper()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the live stream's context was not cut", what)
		return nil
	}
}

func TestAuthenticate(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	a := replica(t, client)
	tok := issue(t, a, "zone-1")

	if _, err := authenticate(a, withToken(tok), "zone-1"); err != nil {
		t.Fatalf("a fresh token for zone-1: %v", err)
	}
	_, err := authenticate(a, context.Background(), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "atollctl generate zone-token --zone NAME")
	_, err = authenticate(a, withToken("not-a-token"), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "is not a zone token")
	_, err = authenticate(a, withToken(tok), "zone-2")
	wantCode(t, err, codes.PermissionDenied, `the zone token is for zone "zone-1", but this connection says it is zone "zone-2"`)
	_, err = authenticate(a, withToken(strings.Repeat("a", MaxTokenBytes+1)), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "more than")

	// A token signed by another global's key under a known key id.
	parts := strings.Split(tok, ".")
	_, foreign, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{}).SignedString(foreign)
	if err != nil {
		t.Fatal(err)
	}
	_, err = authenticate(a, withToken(parts[0]+"."+parts[1]+"."+strings.Split(forged, ".")[2]), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "is not valid")

	if got := testutil.ToFloat64(a.refused.WithLabelValues("wrong_zone")); got != 1 {
		t.Errorf("refused{wrong_zone} = %v, want 1", got)
	}
}

// signWith signs c with the key the authority signs with now, as Issue
// would, for claims Issue never makes (an expiry in the past).
func signWith(t *testing.T, a *Authority, c claims) string {
	t.Helper()
	resp, err := a.cfg.Client.Get(context.Background(), a.signerPath())
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("signer: %v", err)
	}
	key, err := a.getKey(context.Background(), string(resp.Kvs[0].Value))
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = key.ID
	s, err := tok.SignedString(ed25519.NewKeyFromSeed(key.Seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExpiry(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	a := replica(t, client)
	now := time.Now()
	c := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Subject: "zone-1", Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now.Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(-time.Hour))}}
	_, err := authenticate(a, withToken(signWith(t, a, c)), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "has expired")

	// No expiry at all is refused too.
	c.ExpiresAt = nil
	_, err = authenticate(a, withToken(signWith(t, a, c)), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "is not valid")

	// A live stream ends when its token expires.
	c.IssuedAt, c.ExpiresAt = jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(1500*time.Millisecond-clockSkew))
	ctx, err := authenticate(a, withToken(signWith(t, a, c)), "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, waitCut(t, ctx, "expiry"), codes.Unauthenticated, "expired")
}

func TestRevokeCutsLiveStreamsOnEveryReplica(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	a, b := replica(t, client), replica(t, client)
	old := issue(t, a, "zone-1")
	other := issue(t, a, "zone-2")
	onB, err := authenticate(b, withToken(old), "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	zone2, err := authenticate(b, withToken(other), "zone-2")
	if err != nil {
		t.Fatal(err)
	}

	out, err := a.Revoke(context.Background(), "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	if out.Generation != 1 {
		t.Errorf("generation after the first revocation = %d, want 1", out.Generation)
	}
	wantCode(t, waitCut(t, onB, "revocation on another replica"), codes.Unauthenticated, "revoked")
	if zone2.Err() != nil {
		t.Errorf("zone-2's stream was cut by zone-1's revocation: %v", context.Cause(zone2))
	}
	for _, r := range []*Authority{a, b} {
		_, err := authenticate(r, withToken(old), "zone-1")
		wantCode(t, err, codes.Unauthenticated, "revoked")
	}
	// A token issued after the revocation works, on both replicas.
	fresh := issue(t, b, "zone-1")
	for _, r := range []*Authority{a, b} {
		if _, err := authenticate(r, withToken(fresh), "zone-1"); err != nil {
			t.Errorf("a token issued after the revocation: %v", err)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	a, b := replica(t, client), replica(t, client)
	keys, err := a.Keys(context.Background())
	if err != nil || len(keys) != 1 || !keys[0].Signing {
		t.Fatalf("keys after start = %+v, %v; want one signing key (both replicas agree on one)", keys, err)
	}
	first := keys[0].ID
	oldTok := issue(t, a, "zone-1")
	live, err := authenticate(b, withToken(oldTok), "zone-1")
	if err != nil {
		t.Fatal(err)
	}

	next, err := a.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	newTok := issue(t, b, "zone-2")
	for _, c := range []struct{ tok, zone string }{{oldTok, "zone-1"}, {newTok, "zone-2"}} {
		if _, err := authenticate(b, withToken(c.tok), c.zone); err != nil {
			t.Errorf("after rotation, a token of %s: %v", c.zone, err)
		}
	}
	if err := b.RetireKey(context.Background(), next.ID); !errors.Is(err, ErrSigningKey) {
		t.Errorf("retiring the signing key: %v, want ErrSigningKey", err)
	}
	if err := b.RetireKey(context.Background(), "nope"); !errors.Is(err, ErrNoKey) {
		t.Errorf("retiring an unknown key: %v, want ErrNoKey", err)
	}
	if err := a.RetireKey(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	wantCode(t, waitCut(t, live, "key retired on another replica"), codes.Unauthenticated, "retired")
	_, err = authenticate(b, withToken(oldTok), "zone-1")
	wantCode(t, err, codes.Unauthenticated, "a key this global does not have")
	if _, err := authenticate(a, withToken(newTok), "zone-2"); err != nil {
		t.Errorf("a token of the new key after the old one retired: %v", err)
	}
}

func TestIssueValidity(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	a := replica(t, client)
	for _, d := range []time.Duration{0, time.Second, MaxValidity + time.Hour} {
		if _, err := a.Issue(context.Background(), "zone-1", d); err == nil {
			t.Errorf("Issue(validFor %s) succeeded, want an out-of-range error", d)
		}
	}
}
