package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

// refusal reads what the global answers a raw client's Hello: its own Hello
// when admitted, or the status that ended the stream.
func (z *rawZone) refusal() error {
	m, err := z.stream.Recv()
	if err != nil {
		return err
	}
	if m.GetHello() == nil {
		return fmt.Errorf("the global answered %v, not a hello", m)
	}
	return nil
}

func wantRefused(t *testing.T, err error, code codes.Code, says string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), says) {
		t.Fatalf("the global answered %v; want %s saying %q", err, code, says)
	}
}

// zoneDataplanes lists the Dataplanes the global holds for zone.
func zoneDataplanes(t *testing.T, g *process, zone string) string {
	t.Helper()
	code, body := call(t, "GET", g.apiURL+"/meshes/default/dataplanes", "")
	if code != http.StatusOK {
		t.Fatalf("listing Dataplanes: %d %s", code, body)
	}
	var of []string
	for _, n := range listNames(t, body) {
		if strings.HasSuffix(n, "."+zone) {
			of = append(of, n)
		}
	}
	return strings.Join(of, ",")
}

func readyz(t *testing.T, p *process) (int, string) {
	t.Helper()
	resp, err := http.Get(p.apiURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The contract: atollctl prints a token; a zone without one does
// not sync and says why; a token of zone-1 does not admit a Hello as zone-2,
// and zone-2's resources stay as they were.
func TestZoneTokenContract(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "generate", "zone-token", "--zone", "zone-1")
	if err != nil || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("atollctl generate zone-token: %v %q %s", err, out, errOut)
	}
	zone1Token := strings.TrimSpace(out)

	// A zone without a token: not ready, and the log and /readyz say why.
	lone := startAtollUnready(t, zoneArgs("zone-3", t.TempDir(), []string{"--global-address", "grpcs://" + g.kdsAddr, "--global-ca-file", g.caFile()})...)
	waitFor(t, syncWait, "the tokenless zone's readyz to say why", func() error {
		code, body := readyz(t, lone)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "atollctl generate zone-token --zone zone-3") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if logs := lone.logs.String(); !strings.Contains(logs, "the global refused this zone's credentials") || !strings.Contains(logs, "no zone token") {
		t.Errorf("the tokenless zone's log does not say why it does not sync:\n%s", logs)
	}
	if st := statusOf(t, lone); st.Connected {
		t.Error("a zone without a token connected")
	}

	// zone-2, properly admitted, syncs one Dataplane.
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	if code, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/web", `{"type":"Dataplane","networking":{"address":"10.0.0.2","inbound":[{"port":80,"tags":{"atoll.io/service":"web"}}]}}`); code/100 != 2 {
		t.Fatalf("registering web in zone-2: %d %s", code, body)
	}
	waitFor(t, syncWait, "web to reach the global", func() error {
		if got := zoneDataplanes(t, g, "zone-2"); got != "web.zone-2" {
			return fmt.Errorf("zone-2's Dataplanes at the global: %q", got)
		}
		return nil
	})

	// zone-1's token, Hello as zone-2: refused, nothing applied.
	spoof := dialRawToken(t, g, "zone-2", zone1Token)
	wantRefused(t, spoof.refusal(), codes.PermissionDenied, `the zone token is for zone "zone-1", but this connection says it is zone "zone-2"`)
	for _, tok := range []string{"", "garbage", zone1Token + "x"} {
		wantRefused(t, dialRawToken(t, g, "zone-2", tok).refusal(), codes.Unauthenticated, "atollctl generate zone-token --zone")
	}
	if got := zoneDataplanes(t, g, "zone-2"); got != "web.zone-2" {
		t.Errorf("zone-2's Dataplanes at the global after the attempts: %q, want web.zone-2", got)
	}
	if !statusOf(t, z2).Connected {
		t.Error("the real zone-2 lost its session to the attempts")
	}
	// Refusals are counted by reason, never by the name a peer claims.
	_, metrics := call(t, "GET", g.apiURL+"/metrics", "")
	for _, want := range []string{`atoll_kds_zone_auth_refused_total{reason="wrong_zone"} 1`, `atoll_kds_zone_auth_refused_total{reason="missing"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(metrics, "zone_auth"))
		}
	}
}

// Revoking cuts the live stream; a new token written to the same file is
// used from the next connection without a restart; a deleted zone cannot
// come back with the token it had.
func TestZoneTokenRevocationRotationAndDeletion(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	tokenFile := filepath.Join(t.TempDir(), "zone-1.token")
	writeToken := func() {
		out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "generate", "zone-token", "--zone", "zone-1", "--valid-for", "1h")
		if err != nil {
			t.Fatalf("generate zone-token: %v %s", err, errOut)
		}
		if err := os.WriteFile(tokenFile, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeToken()
	z := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--global-token-file", tokenFile)
	waitFor(t, syncWait, "zone-1 connected", func() error {
		if !statusOf(t, z).Connected {
			return fmt.Errorf("not connected")
		}
		return nil
	})

	out, errOut, err := atollctl(t, "", "--api-url", g.apiURL, "revoke", "zone-token", "--zone", "zone-1")
	if err != nil || !strings.Contains(out, "connections cut on the replica asked: 1") {
		t.Fatalf("revoke zone-token: %v %q %s\n%s", err, out, errOut, g.logs)
	}
	waitFor(t, syncWait, "zone-1 cut and refused", func() error {
		code, body := call(t, "GET", z.apiURL+"/zone", "")
		if code != 200 || !strings.Contains(body, `"connected":false`) || !strings.Contains(body, "revoked") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	// Rotation on disk: the next connection presents the new token.
	writeToken()
	waitFor(t, syncWait, "zone-1 back with its new token", func() error {
		if !statusOf(t, z).Connected {
			return fmt.Errorf("not connected")
		}
		if code, body := readyz(t, z); code != http.StatusOK {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		return nil
	})

	// Deleting the zone drains it and revokes its tokens.
	if code, body := call(t, "DELETE", g.apiURL+"/zones/zone-1", ""); code/100 != 2 {
		t.Fatalf("deleting zone-1: %d %s", code, body)
	}
	waitFor(t, syncWait, "the deleted zone refused", func() error {
		code, body := call(t, "GET", z.apiURL+"/zone", "")
		if code != 200 || !strings.Contains(body, `"credentialsRefused":true`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if code, body := call(t, "GET", g.apiURL+"/zones", ""); strings.Contains(body, `"zone-1"`) {
		t.Errorf("the deleted zone came back: %d %s", code, body)
	}
}

// Two replicas on one etcd: a key rotated on one signs tokens the other
// verifies; retiring the old key on the other cuts a stream admitted with
// it and refuses its tokens.
func TestZoneTokenKeyRotationAcrossReplicas(t *testing.T) {
	srv, _ := etcdtest.Start(t, "")
	ga := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint())
	gb := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint())
	oldToken := zoneToken(t, ga, "zone-1")
	live := dialRawToken(t, ga, "zone-1", oldToken)
	if err := live.refusal(); err != nil {
		t.Fatalf("the old key's token before rotation: %v", err)
	}

	out, errOut, err := atollctl(t, "", "--api-url", gb.apiURL, "rotate", "zone-token-key")
	if err != nil {
		t.Fatalf("rotate zone-token-key: %v %s", err, errOut)
	}
	newKey := strings.Fields(out)[1]
	newToken := zoneToken(t, gb, "zone-2")
	if err := dialRawToken(t, ga, "zone-2", newToken).refusal(); err != nil {
		t.Fatalf("replica A refused a token signed on B with the new key: %v", err)
	}
	if err := dialRawToken(t, gb, "zone-1", oldToken).refusal(); err != nil {
		t.Fatalf("the old key no longer verifies before it is retired: %v", err)
	}

	keys, _, err := atollctl(t, "", "--api-url", ga.apiURL, "get", "zone-token-keys")
	if err != nil || !strings.Contains(keys, newKey+" ") || !strings.Contains(keys, "signs and verifies") {
		t.Fatalf("get zone-token-keys: %v\n%s", err, keys)
	}
	var oldKey string
	for _, line := range strings.Split(keys, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] != "ID" && f[0] != newKey {
			oldKey = f[0]
		}
	}
	if _, errOut, err := atollctl(t, "", "--api-url", ga.apiURL, "retire", "zone-token-key", newKey); err == nil || !strings.Contains(errOut, "rotate first") {
		t.Errorf("retiring the signing key: %v %s", err, errOut)
	}
	if _, errOut, err := atollctl(t, "", "--api-url", gb.apiURL, "retire", "zone-token-key", oldKey); err != nil {
		t.Fatalf("retire zone-token-key %s: %v %s", oldKey, err, errOut)
	}
	// The stream on A, admitted with the retired key, is cut.
	for {
		_, err := live.stream.Recv()
		if err != nil {
			wantRefused(t, err, codes.Unauthenticated, "was retired")
			break
		}
	}
	wantRefused(t, dialRawToken(t, ga, "zone-1", oldToken).refusal(), codes.Unauthenticated, "a key this global does not have")
}

// --kds-zone-auth none admits a zone without a token, and says at start
// that it does.
func TestZoneAuthNoneWarns(t *testing.T) {
	g := startGlobal(t, t.TempDir(), "--kds-zone-auth", "none")
	if !strings.Contains(g.logs.String(), "zones are not authenticated (kds.zoneAuth none)") {
		t.Errorf("no warning at start:\n%s", g.logs)
	}
	if err := dialRawToken(t, g, "zone-1", "").refusal(); err != nil {
		t.Fatalf("a tokenless zone with --kds-zone-auth none: %v", err)
	}
	// The token endpoints are not there to mislead: nothing checks tokens.
	if code, _ := call(t, "POST", g.apiURL+"/zones/zone-1/tokens", ""); code == http.StatusCreated {
		t.Errorf("a global without zone authentication issued a token")
	}
}

// An expired token is refused by a real global: the test signs one with the
// global's own key, read from its etcd, as a token issued long ago would be.
func TestZoneTokenExpired(t *testing.T) {
	srv, client := etcdtest.Start(t, "")
	g := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint())
	ctx := context.Background()
	signer, err := client.Get(ctx, "/atoll/zone-auth/signer")
	if err != nil || len(signer.Kvs) != 1 {
		t.Fatalf("the global's signing key id in etcd: %v %v", err, signer)
	}
	kid := string(signer.Kvs[0].Value)
	stored, err := client.Get(ctx, "/atoll/zone-auth/keys/"+kid)
	if err != nil || len(stored.Kvs) != 1 {
		t.Fatalf("the global's signing key in etcd: %v", err)
	}
	var key struct {
		Seed []byte `json:"seed"`
	}
	if err := json.Unmarshal(stored.Kvs[0].Value, &key); err != nil {
		t.Fatal(err)
	}
	sign := func(expires time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": "atoll-global", "aud": "atoll-kds", "sub": "zone-1", "gen": 0,
			"iat": expires.Add(-24 * time.Hour).Unix(), "exp": expires.Unix(),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(ed25519.NewKeyFromSeed(key.Seed))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The same claims, unexpired, are admitted: only the expiry differs.
	if err := dialRawToken(t, g, "zone-1", sign(time.Now().Add(time.Hour))).refusal(); err != nil {
		t.Fatalf("an unexpired token signed the same way: %v", err)
	}
	wantRefused(t, dialRawToken(t, g, "zone-1", sign(time.Now().Add(-time.Hour))).refusal(), codes.Unauthenticated, "has expired")
	_, metrics := call(t, "GET", g.apiURL+"/metrics", "")
	if !strings.Contains(metrics, `atoll_kds_zone_auth_refused_total{reason="expired"} 1`) {
		t.Errorf("/metrics does not count the expired token:\n%s", grepLines(metrics, "zone_auth"))
	}
}
