package zoneauth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/kds"
)

var _ kds.Authenticator = (*Authority)(nil)

// howToIssue is the remedy every refusal names.
func howToIssue(zone string) string {
	if zone == "" {
		zone = "NAME"
	}
	return fmt.Sprintf("issue one on the global with `atollctl generate zone-token --zone %s` and start the zone with --global-token-file FILE (the zone reads the file again on every connection)", zone)
}

var errBadSubject = errors.New("the token's subject is not a zone name")

// credential is a valid token, not yet bound to the zone a Hello names.
type credential struct {
	a      *Authority
	ctx    context.Context
	claims claims
	keyID  string
}

// Authenticate checks the stream's token before anything is read from the
// stream: well formed, signed by a key the global still has, unexpired and
// not revoked. Which zone it admits is checked by Admit, once the Hello
// names one.
func (a *Authority) Authenticate(ctx context.Context) (kds.Credential, error) {
	raw, err := bearer(ctx)
	if err != nil {
		a.refused.WithLabelValues("missing").Inc()
		return nil, status.Errorf(codes.Unauthenticated, "no zone token (%v): %s", err, howToIssue(""))
	}
	var key storedKey
	var rec zoneRecord
	var lookupErr error
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(issuer), jwt.WithAudience(audience), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(clockSkew))
	var c claims
	_, err = parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		id, _ := t.Header["kid"].(string)
		if id == "" || len(id) > 64 {
			return nil, fmt.Errorf("%w: the token names no signing key", errUnknownKey)
		}
		sub, _ := t.Claims.GetSubject()
		key, rec, lookupErr = a.lookup(ctx, id, sub)
		if lookupErr != nil {
			return nil, lookupErr
		}
		return ed25519.NewKeyFromSeed(key.Seed).Public(), nil
	})
	if err != nil {
		reason, what := "invalid", "is not valid"
		switch {
		case errors.Is(lookupErr, errBadSubject):
			reason, what = "malformed", "names no zone"
		case lookupErr != nil && !errors.Is(lookupErr, errUnknownKey):
			a.refused.WithLabelValues("unavailable").Inc()
			return nil, status.Errorf(codes.Unavailable, "checking the zone token: %v", lookupErr)
		case errors.Is(err, errUnknownKey):
			reason, what = "unknown_key", "was signed by a key this global does not have (retired, or another global's)"
		case errors.Is(err, jwt.ErrTokenExpired):
			reason, what = "expired", "has expired"
		case errors.Is(err, jwt.ErrTokenMalformed):
			reason, what = "malformed", "is not a zone token"
		}
		a.refused.WithLabelValues(reason).Inc()
		return nil, status.Errorf(codes.Unauthenticated, "the zone token %s (%v): %s", what, err, howToIssue(c.Subject))
	}
	if c.Generation != rec.Generation {
		a.refused.WithLabelValues("revoked").Inc()
		return nil, status.Errorf(codes.Unauthenticated, "the token of zone %q was revoked (or the zone deleted) at %s: %s", c.Subject, rec.RevokedAt.Format(time.RFC3339), howToIssue(c.Subject))
	}
	return &credential{a: a, ctx: ctx, claims: c, keyID: key.ID}, nil
}

// Admit binds the token to the zone the Hello names: only its own.
func (c *credential) Admit(zone string) (context.Context, error) {
	if c.claims.Subject != zone {
		c.a.refused.WithLabelValues("wrong_zone").Inc()
		return nil, status.Errorf(codes.PermissionDenied, "the zone token is for zone %q, but this connection says it is zone %q: a token admits only its own zone; %s", c.claims.Subject, zone, howToIssue(zone))
	}
	return c.a.admit(c.ctx, zone, c.claims, c.keyID), nil
}

// bearer returns the token of the stream's "authorization: Bearer" header.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(kds.TokenHeader)
	if len(vals) == 0 {
		return "", errors.New("no authorization header")
	}
	if len(vals) > 1 {
		return "", errors.New("more than one authorization header")
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || tok == "" {
		return "", errors.New(`the authorization header is not "Bearer TOKEN"`)
	}
	if len(tok) > MaxTokenBytes {
		return "", fmt.Errorf("the token has %d bytes, more than %d", len(tok), MaxTokenBytes)
	}
	return tok, nil
}

// lookup reads, in one etcd round trip, the signing key and the zone's
// record as they are now, so a revocation or retirement made on another
// replica a moment ago already counts.
func (a *Authority) lookup(ctx context.Context, keyID, zone string) (storedKey, zoneRecord, error) {
	if !validZoneName(zone) || len(zone) > 63 {
		return storedKey{}, zoneRecord{}, errBadSubject
	}
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	resp, err := a.cfg.Client.Txn(ctx).Then(clientv3.OpGet(a.keyPath(keyID)), clientv3.OpGet(a.zonePath(zone))).Commit()
	if err != nil {
		return storedKey{}, zoneRecord{}, err
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return storedKey{}, zoneRecord{}, fmt.Errorf("key %q: %w", keyID, errUnknownKey)
	}
	key, err := decodeKey(kvs[0].Value)
	if err != nil {
		return storedKey{}, zoneRecord{}, err
	}
	rec, err := decodeZone(resp.Responses[1].GetResponseRange().GetKvs())
	return key, rec, err
}

// admit registers an admitted stream and returns its context, which ends
// when the token expires or Run/Revoke/RetireKey cut it.
func (a *Authority) admit(ctx context.Context, zone string, c claims, keyID string) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	expired := status.Errorf(codes.Unauthenticated, "zone %q: the zone token expired at %s: %s", zone, c.ExpiresAt.Time.UTC().Format(time.RFC3339), howToIssue(zone))
	ad := &admission{generation: c.Generation, keyID: keyID, cancel: cancel}
	// Cut when a reconnect with the same token would be refused too.
	timer := time.AfterFunc(time.Until(c.ExpiresAt.Time.Add(clockSkew)), func() {
		a.cut.WithLabelValues("expired").Inc()
		cancel(expired)
	})
	a.mu.Lock()
	if a.live[zone] == nil {
		a.live[zone] = map[*admission]struct{}{}
	}
	a.live[zone][ad] = struct{}{}
	a.mu.Unlock()
	context.AfterFunc(ctx, func() {
		timer.Stop()
		a.mu.Lock()
		delete(a.live[zone], ad)
		if len(a.live[zone]) == 0 {
			delete(a.live, zone)
		}
		a.mu.Unlock()
	})
	return ctx
}

// countBelow counts zone's live streams admitted with a generation before gen.
func (a *Authority) countBelow(zone string, gen uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for ad := range a.live[zone] {
		if ad.generation < gen {
			n++
		}
	}
	return n
}

// cutZone ends zone's streams admitted with a generation before gen.
func (a *Authority) cutZone(zone string, gen uint64) {
	cause := status.Errorf(codes.Unauthenticated, "zone %q: the zone token was revoked: %s", zone, howToIssue(zone))
	a.mu.Lock()
	var cut []*admission
	for ad := range a.live[zone] {
		if ad.generation < gen {
			cut = append(cut, ad)
		}
	}
	a.mu.Unlock()
	for _, ad := range cut {
		a.cut.WithLabelValues("revoked").Inc()
		ad.cancel(cause)
	}
	if len(cut) > 0 {
		a.cfg.Log.Info("zone token revoked: live streams cut", "zone", zone, "streams", len(cut))
	}
}

// cutKey ends every stream admitted with a token signed by key id.
func (a *Authority) cutKey(id string) {
	a.mu.Lock()
	var cut []*admission
	var zones []string
	for zone, ads := range a.live {
		for ad := range ads {
			if ad.keyID == id {
				cut = append(cut, ad)
				zones = append(zones, zone)
			}
		}
	}
	a.mu.Unlock()
	for i, ad := range cut {
		a.cut.WithLabelValues("key_retired").Inc()
		ad.cancel(status.Errorf(codes.Unauthenticated, "zone %q: the key that signed the zone token (%s) was retired: %s", zones[i], id, howToIssue(zones[i])))
	}
	if len(cut) > 0 {
		a.cfg.Log.Info("zone token signing key retired: live streams cut", "key", id, "streams", len(cut))
	}
}

// Run follows revocations and key retirements made by any replica and cuts
// the streams they invalidate, until ctx ends.
func (a *Authority) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		a.mu.Lock()
		rev := a.rev
		a.mu.Unlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := a.cfg.Client.Watch(wctx, a.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range ch {
			if err := resp.Err(); err != nil {
				a.cfg.Log.Warn("following zone token revocations: watch failed; resuming", "error", err)
				break
			}
			for _, ev := range resp.Events {
				a.apply(ev)
			}
			a.mu.Lock()
			a.rev = resp.Header.Revision
			a.mu.Unlock()
		}
		cancel()
		if ctx.Err() != nil {
			break
		}
		// A compacted revision or a lost leader: streams admitted stay
		// until the next event; resume from now after a pause.
		if err := a.Start(ctx); err != nil {
			a.cfg.Log.Warn("following zone token revocations: reloading failed; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// apply acts on one watched change.
func (a *Authority) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	switch {
	case strings.HasPrefix(key, a.zonesPrefix()) && ev.Type == mvccpb.PUT:
		rec, err := decodeZone([]*mvccpb.KeyValue{ev.Kv})
		if err != nil {
			a.cfg.Log.Warn("unreadable zone token record", "key", key, "error", err)
			return
		}
		a.cutZone(strings.TrimPrefix(key, a.zonesPrefix()), rec.Generation)
	case strings.HasPrefix(key, a.keysPrefix()) && ev.Type == mvccpb.DELETE:
		a.cutKey(strings.TrimPrefix(key, a.keysPrefix()))
	}
}
