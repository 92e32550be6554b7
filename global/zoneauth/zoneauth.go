package zoneauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Token claims.
const (
	issuer   = "atoll-global"
	audience = "atoll-kds"
	// MaxTokenBytes bounds a token a peer may present; real ones are ~400.
	MaxTokenBytes = 4096
	// DefaultValidity is how long a token is valid unless the issuer says.
	DefaultValidity = 365 * 24 * time.Hour
	// MaxValidity is the longest validity a token may be issued with.
	MaxValidity = 10 * 365 * 24 * time.Hour
	// MinValidity is the shortest.
	MinValidity = time.Minute
	// clockSkew is tolerated between the replica that issued a token and
	// the one that checks it.
	clockSkew = 30 * time.Second
	// etcdTimeout bounds every etcd call of this package.
	etcdTimeout = 5 * time.Second
)

// Config configures an Authority.
type Config struct {
	Client *clientv3.Client
	// Prefix is where the keys and zone records live, ending in '/'.
	Prefix   string
	Registry prometheus.Registerer
	Log      *slog.Logger
}

// Authority issues zone tokens and checks them on KDS streams.
type Authority struct {
	cfg     Config
	refused *prometheus.CounterVec
	cut     *prometheus.CounterVec

	mu sync.Mutex
	// live holds the streams admitted, by zone, to cut them when their
	// credential stops being valid.
	live map[string]map[*admission]struct{}
	// rev is the etcd revision the state was loaded at; Run watches after it.
	rev int64
}

// admission is one admitted stream.
type admission struct {
	generation uint64
	keyID      string
	cancel     context.CancelCauseFunc
}

// storedKey is a signing key as kept in etcd.
type storedKey struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Seed    []byte    `json:"seed"`
}

// zoneRecord is a zone's revocation state as kept in etcd.
type zoneRecord struct {
	Generation uint64    `json:"generation"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
}

// claims are a zone token's claims: the registered ones and the zone's
// generation at issue time.
type claims struct {
	jwt.RegisteredClaims
	Generation uint64 `json:"gen"`
}

// New returns an Authority; call Start before use.
func New(cfg Config) *Authority {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &Authority{
		cfg: cfg,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_kds_zone_auth_refused_total",
			Help: "KDS streams refused for their zone token, by reason (missing, malformed, invalid, unknown_key, expired, revoked, wrong_zone, unavailable).",
		}, []string{"reason"}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_kds_zone_auth_streams_cut_total",
			Help: "Live KDS streams ended because their zone token stopped being valid, by reason (revoked, key_retired, expired).",
		}, []string{"reason"}),
		live: map[string]map[*admission]struct{}{},
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(a.refused, a.cut)
	}
	return a
}

func (a *Authority) keyPath(id string) string    { return a.cfg.Prefix + "keys/" + id }
func (a *Authority) zonePath(zone string) string { return a.cfg.Prefix + "zones/" + zone }
func (a *Authority) signerPath() string          { return a.cfg.Prefix + "signer" }
func (a *Authority) keysPrefix() string          { return a.cfg.Prefix + "keys/" }
func (a *Authority) zonesPrefix() string         { return a.cfg.Prefix + "zones/" }
func etcdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, etcdTimeout)
}

// Start creates the first signing key when there is none (replicas
// starting together agree on one) and records the revision Run follows from.
func (a *Authority) Start(ctx context.Context) error {
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	key, data, err := newKey()
	if err != nil {
		return err
	}
	resp, err := a.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(a.signerPath()), "=", 0)).
		Then(clientv3.OpPut(a.keyPath(key.ID), string(data)), clientv3.OpPut(a.signerPath(), key.ID)).
		Commit()
	if err != nil {
		return fmt.Errorf("zone tokens: creating the first signing key in etcd: %w", err)
	}
	if resp.Succeeded {
		a.cfg.Log.Info("created the zone token signing key", "key", key.ID)
	}
	a.mu.Lock()
	a.rev = resp.Header.Revision
	a.mu.Unlock()
	return nil
}

func newKey() (storedKey, []byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return storedKey{}, nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return storedKey{}, nil, err
	}
	k := storedKey{ID: hex.EncodeToString(id), Created: time.Now().UTC(), Seed: seed}
	data, err := json.Marshal(k)
	return k, data, err
}

// Issued is a token just issued.
type Issued struct {
	Zone    string    `json:"zone"`
	Token   string    `json:"token"`
	KeyID   string    `json:"keyID"`
	Expires time.Time `json:"expires"`
}

// Issue signs a token for zone, valid for validFor, with the current
// signing key and the zone's current generation.
func (a *Authority) Issue(ctx context.Context, zone string, validFor time.Duration) (Issued, error) {
	if validFor < MinValidity || validFor > MaxValidity {
		return Issued{}, fmt.Errorf("validFor %s is out of range: use %s to %s", validFor, MinValidity, MaxValidity)
	}
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	resp, err := a.cfg.Client.Txn(ctx).Then(clientv3.OpGet(a.signerPath()), clientv3.OpGet(a.zonePath(zone))).Commit()
	if err != nil {
		return Issued{}, fmt.Errorf("reading the signing key: %w", err)
	}
	signer := resp.Responses[0].GetResponseRange().GetKvs()
	if len(signer) == 0 {
		return Issued{}, errors.New("no zone token signing key: the global creates one at start; restart it")
	}
	key, err := a.getKey(ctx, string(signer[0].Value))
	if err != nil {
		return Issued{}, err
	}
	rec, err := decodeZone(resp.Responses[1].GetResponseRange().GetKvs())
	if err != nil {
		return Issued{}, err
	}
	now := time.Now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return Issued{}, err
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: zone, Audience: jwt.ClaimStrings{audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(validFor)),
			ID: hex.EncodeToString(jti),
		},
		Generation: rec.Generation,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = key.ID
	signed, err := tok.SignedString(ed25519.NewKeyFromSeed(key.Seed))
	if err != nil {
		return Issued{}, fmt.Errorf("signing the zone token: %w", err)
	}
	return Issued{Zone: zone, Token: signed, KeyID: key.ID, Expires: c.ExpiresAt.Time.UTC()}, nil
}

// getKey reads one signing key.
func (a *Authority) getKey(ctx context.Context, id string) (storedKey, error) {
	resp, err := a.cfg.Client.Get(ctx, a.keyPath(id))
	if err != nil {
		return storedKey{}, fmt.Errorf("reading signing key %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return storedKey{}, fmt.Errorf("signing key %s: %w", id, errUnknownKey)
	}
	return decodeKey(resp.Kvs[0].Value)
}

var errUnknownKey = errors.New("no such signing key (retired, or from another global)")

func decodeKey(data []byte) (storedKey, error) {
	var k storedKey
	if err := json.Unmarshal(data, &k); err != nil {
		return k, fmt.Errorf("a signing key in etcd is unreadable: %w", err)
	}
	if len(k.Seed) != ed25519.SeedSize {
		return k, fmt.Errorf("signing key %s in etcd has a %d-byte seed, want %d", k.ID, len(k.Seed), ed25519.SeedSize)
	}
	return k, nil
}

func decodeZone(kvs []*mvccpb.KeyValue) (zoneRecord, error) {
	var rec zoneRecord
	if len(kvs) == 0 {
		return rec, nil
	}
	if err := json.Unmarshal(kvs[0].Value, &rec); err != nil {
		return rec, fmt.Errorf("zone record %s in etcd is unreadable: %w", kvs[0].Key, err)
	}
	return rec, nil
}

// Revoke invalidates every token issued for zone until now and returns the
// record written. Every replica cuts the zone's live streams admitted with
// them.
func (a *Authority) Revoke(ctx context.Context, zone string) (Revoked, error) {
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	for {
		resp, err := a.cfg.Client.Get(ctx, a.zonePath(zone))
		if err != nil {
			return Revoked{}, fmt.Errorf("reading zone %s's token record: %w", zone, err)
		}
		rec, err := decodeZone(resp.Kvs)
		if err != nil {
			return Revoked{}, err
		}
		var modRev int64
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
		}
		rec.Generation++
		rec.RevokedAt = time.Now().UTC()
		// Counted before the write: this replica's watch may cut them
		// before the cut below.
		live := a.countBelow(zone, rec.Generation)
		data, err := json.Marshal(rec)
		if err != nil {
			return Revoked{}, err
		}
		txn, err := a.cfg.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(a.zonePath(zone)), "=", modRev)).
			Then(clientv3.OpPut(a.zonePath(zone), string(data))).Commit()
		if err != nil {
			return Revoked{}, fmt.Errorf("writing zone %s's token record: %w", zone, err)
		}
		if txn.Succeeded {
			// Cut here too: this replica's watch would, a moment later.
			a.cutZone(zone, rec.Generation)
			return Revoked{Zone: zone, Generation: rec.Generation, RevokedAt: rec.RevokedAt, StreamsCut: live}, nil
		}
		// Another replica revoked at the same time: read again.
	}
}

// Revoked is the outcome of Revoke.
type Revoked struct {
	Zone       string    `json:"zone"`
	Generation uint64    `json:"generation"`
	RevokedAt  time.Time `json:"revokedAt"`
	// StreamsCut counts the streams this replica cut; other replicas cut
	// theirs when they see the revocation.
	StreamsCut int `json:"streamsCut"`
}

// KeyInfo describes a signing key, without its secret.
type KeyInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Signing bool      `json:"signing"`
}

// Keys lists the signing keys, oldest first.
func (a *Authority) Keys(ctx context.Context) ([]KeyInfo, error) {
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	resp, err := a.cfg.Client.Txn(ctx).Then(
		clientv3.OpGet(a.keysPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		clientv3.OpGet(a.signerPath())).Commit()
	if err != nil {
		return nil, fmt.Errorf("reading the signing keys: %w", err)
	}
	signer := ""
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		signer = string(kvs[0].Value)
	}
	var out []KeyInfo
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		k, err := decodeKey(kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, KeyInfo{ID: k.ID, Created: k.Created, Signing: k.ID == signer})
	}
	return out, nil
}

// RotateKey creates a new signing key, which signs from now on; older keys
// keep verifying the tokens they signed until retired.
func (a *Authority) RotateKey(ctx context.Context) (KeyInfo, error) {
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	key, data, err := newKey()
	if err != nil {
		return KeyInfo{}, err
	}
	if _, err := a.cfg.Client.Txn(ctx).Then(
		clientv3.OpPut(a.keyPath(key.ID), string(data)), clientv3.OpPut(a.signerPath(), key.ID)).Commit(); err != nil {
		return KeyInfo{}, fmt.Errorf("writing the new signing key: %w", err)
	}
	a.cfg.Log.Info("zone token signing key rotated", "key", key.ID)
	return KeyInfo{ID: key.ID, Created: key.Created, Signing: true}, nil
}

// ErrSigningKey is returned when retiring the key that signs.
var ErrSigningKey = errors.New("this key signs new tokens: rotate first (atollctl rotate zone-token-key), then retire it")

// ErrNoKey is returned when retiring a key that does not exist.
var ErrNoKey = errors.New("no such signing key")

// RetireKey deletes a key that no longer signs: tokens it signed stop
// verifying, and streams admitted with them are cut.
func (a *Authority) RetireKey(ctx context.Context, id string) error {
	ctx, cancel := etcdCtx(ctx)
	defer cancel()
	resp, err := a.cfg.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(a.signerPath()), "!=", id)).
		Then(clientv3.OpDelete(a.keyPath(id))).Commit()
	if err != nil {
		return fmt.Errorf("retiring signing key %s: %w", id, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("key %s: %w", id, ErrSigningKey)
	}
	if resp.Responses[0].GetResponseDeleteRange().GetDeleted() == 0 {
		return fmt.Errorf("key %q: %w", id, ErrNoKey)
	}
	a.cutKey(id)
	a.cfg.Log.Info("zone token signing key retired", "key", id)
	return nil
}

// validZoneName is checked by callers (the API) with the resource naming
// rule; here only what would break the etcd layout is refused.
func validZoneName(zone string) bool {
	return zone != "" && !strings.ContainsAny(zone, "/\x00")
}
