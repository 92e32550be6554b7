package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gate is a TCP forwarder to a global's KDS port. It holds the connections
// it accepts until opened, then dials target (retrying while the target is
// down) and relays: a zone behind it meets the global only when the test
// says, and at the first moment the global listens.
type gate struct {
	ln     net.Listener
	target string
	open   chan struct{}
	once   sync.Once
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: make(chan struct{})}
	// Zones started through the gate get their tokens from the global behind it.
	if behind, ok := globalsByKDS.Load(target); ok {
		globalsByKDS.Store(g.addr(), behind)
	}
	t.Cleanup(func() { ln.Close(); g.release() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.relay(c)
		}
	}()
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) relay(c net.Conn) {
	defer c.Close()
	<-g.open
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var up net.Conn
	for deadline := time.Now().Add(60 * time.Second); up == nil; <-tick.C {
		var err error
		if up, err = net.Dial("tcp", g.target); err != nil && time.Now().After(deadline) {
			return
		}
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// identityStatus is the part of a zone's GET /zone about its global.
type identityStatus struct {
	Connected        bool   `json:"connected"`
	GlobalClusterID  string `json:"globalClusterId"`
	RefusedClusterID string `json:"refusedClusterId"`
	GlobalProblem    string `json:"globalProblem"`
	Stats            map[string]struct {
		Received, Refused uint64
	} `json:"stats"`
}

func identityOf(t *testing.T, z *process) identityStatus {
	t.Helper()
	status, body := call(t, "GET", z.apiURL+"/zone", "")
	var s identityStatus
	if status != 200 || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("GET /zone: %d %s", status, body)
	}
	return s
}

// extraVIP is the VIP of service web in mesh extra as the control plane at
// apiURL serves it ("" when none, or only the zone's proposal).
func extraVIP(t *testing.T, apiURL string) string {
	status, body := call(t, "GET", apiURL+"/meshes/extra/vips", "")
	if status != 200 {
		return ""
	}
	var l struct {
		Items []struct {
			Service  string `json:"service"`
			VIP      string `json:"vip"`
			Proposed bool   `json:"proposed"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &l)
	for _, it := range l.Items {
		if it.Service == "web" && !it.Proposed {
			return it.VIP
		}
	}
	return ""
}

// A zone synced with global A, pointed at a new global B on an empty data
// dir, keeps mesh extra and its VIP table, says on /readyz, GET /zone and
// atollctl status why and how to accept B, and applies B's state once
// accepted with atollctl accept-global.
func TestZoneKeepsItsStateWhenItsGlobalLostItsState(t *testing.T) {
	a := startGlobal(t, t.TempDir())
	zdir := t.TempDir()
	z := startSyncedZone(t, "zone-1", zdir, a.kdsAddr, a.caFile())
	if status, body := call(t, "PUT", a.apiURL+"/meshes/extra", `{"type":"Mesh"}`); status != http.StatusCreated {
		t.Fatalf("PUT mesh extra on global A: %d %s", status, body)
	}
	waitFor(t, syncWait, "zone-1 to hold mesh extra", func() error {
		if status, body := call(t, "GET", z.apiURL+"/meshes/extra", ""); status != 200 {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	web := `{"type":"Dataplane","mesh":"extra","name":"web-1","networking":{"address":"127.0.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":"web"}}]}}`
	if status, body := call(t, "PUT", z.apiURL+"/meshes/extra/dataplanes/web-1", web); status != http.StatusCreated {
		t.Fatalf("PUT dataplane web-1: %d %s", status, body)
	}
	var vip string
	waitFor(t, syncWait, "global A's VIP for web in mesh extra at zone-1", func() error {
		if vip = extraVIP(t, z.apiURL); vip == "" {
			return fmt.Errorf("no VIP from the global yet")
		}
		return nil
	})
	idA := identityOf(t, z).GlobalClusterID
	if idA == "" {
		t.Fatal("zone-1 did not remember global A's cluster identity")
	}

	// Global B: an empty data dir, so an empty etcd. The zone restarts with
	// B's address, behind a gate opened once the zone is up.
	b := startGlobal(t, t.TempDir())
	if status, body := call(t, "GET", b.apiURL+"/meshes/extra", ""); status != http.StatusNotFound {
		t.Fatalf("global B has mesh extra: %d %s", status, body)
	}
	z.stop()
	toB := startGate(t, b.kdsAddr)
	z = startSyncedZone(t, "zone-1", zdir, toB.addr(), b.caFile())
	toB.release()

	var refused identityStatus
	waitFor(t, syncWait, "zone-1 to refuse global B's removals", func() error {
		refused = identityOf(t, z)
		if refused.RefusedClusterID == "" || refused.Stats["Mesh"].Refused == 0 || refused.Stats["VIPTable"].Refused == 0 {
			return fmt.Errorf("status %+v", refused)
		}
		return nil
	})
	idB := refused.RefusedClusterID
	if idB == idA || refused.GlobalClusterID != idA {
		t.Fatalf("zone-1 remembers %s and refuses %s; want A's %s remembered and another refused", refused.GlobalClusterID, idB, idA)
	}
	if status, body := call(t, "GET", b.apiURL+"/global", ""); status != 200 || !strings.Contains(body, `"clusterId":"`+idB+`"`) {
		t.Errorf("global B's GET /global = %d %s, want its cluster identity %s", status, body, idB)
	}
	if status, body := call(t, "GET", z.apiURL+"/meshes/extra", ""); status != 200 {
		t.Fatalf("zone-1 lost mesh extra to global B: %d %s", status, body)
	}
	if got := extraVIP(t, z.apiURL); got != vip {
		t.Fatalf("zone-1's VIP for web in mesh extra = %q, want %s kept", got, vip)
	}
	accept := "atollctl accept-global " + idB
	status, body := call(t, "GET", z.apiURL+"/readyz", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, accept) {
		t.Fatalf("zone-1's /readyz = %d %q, want 503 naming %q", status, body, accept)
	}
	if out, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "status"); err != nil || !strings.Contains(out, "REFUSING") || !strings.Contains(out, accept) {
		t.Fatalf("atollctl status: %v %q %q", err, out, errOut)
	}
	if n := strings.Count(z.logs.String(), "that this zone synced with"); n != 1 {
		t.Errorf("zone-1 logged the refusal %d times, want once", n)
	}

	// Accepting another identity than the one on offer changes nothing.
	if _, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "accept-global", idA); err == nil || !strings.Contains(errOut, idB) {
		t.Fatalf("accept-global %s (not on offer): %v %q", idA, err, errOut)
	}
	if out, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "accept-global", idB); err != nil || !strings.Contains(out, idB) {
		t.Fatalf("atollctl accept-global: %v %q %q", err, out, errOut)
	}
	waitFor(t, syncWait, "zone-1 to apply global B's state", func() error {
		if status, body := call(t, "GET", z.apiURL+"/meshes/extra", ""); status != http.StatusNotFound {
			return fmt.Errorf("mesh extra: %d %s", status, body)
		}
		if got := extraVIP(t, z.apiURL); got != "" {
			return fmt.Errorf("web in mesh extra still has VIP %s", got)
		}
		if status, body := call(t, "GET", z.apiURL+"/readyz", ""); status != 200 {
			return fmt.Errorf("readyz: %d %s", status, body)
		}
		return nil
	})
	if st := identityOf(t, z); st.GlobalClusterID != idB || st.RefusedClusterID != "" {
		t.Fatalf("after accepting: %+v, want %s remembered and nothing refused", st, idB)
	}

	// Remembered across a restart.
	z.stop()
	z = startSyncedZone(t, "zone-1", zdir, b.kdsAddr, b.caFile())
	waitFor(t, syncWait, "zone-1 connected to global B", func() error {
		if st := identityOf(t, z); !st.Connected || st.GlobalClusterID != idB || st.RefusedClusterID != "" {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
}

// seCount is how many endpoints zone-1 holds for service backend of
// zone-2, through its REST API.
func seCount(t *testing.T, apiURL string) (int, error) {
	status, body := call(t, "GET", apiURL+"/meshes/default/serviceendpoints", "")
	if status != 200 {
		return 0, fmt.Errorf("%d %s", status, body)
	}
	var l struct {
		Items []struct {
			Zone      string            `json:"zone"`
			Service   string            `json:"service"`
			Endpoints []json.RawMessage `json:"endpoints"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return 0, err
	}
	n := 0
	for _, it := range l.Items {
		if it.Zone == "zone-2" && it.Service == "backend" {
			n += len(it.Endpoints)
		}
	}
	return n, nil
}

// A zone connected while the global restarts, reconnecting at the first
// moment the global listens, never sees another zone's endpoints of a
// Direct mesh go away: the global serves zones only once its endpoint
// index is loaded. (Between real processes the window is narrow: the
// global's handshake and first etcd writes usually outlast loading a few
// hundred Dataplanes. TestZonesAreServedOnlyOnceTheEndpointIndexIsLoaded
// in package global holds the load back to prove the order.)
func TestZonesNeverSeeAnEmptyEndpointSetWhileTheGlobalStarts(t *testing.T) {
	gdir, kdsAddr := t.TempDir(), freePort(t)
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	if status, body := call(t, "PUT", g.apiURL+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status != 200 {
		t.Fatalf("PUT mesh default Direct: %d %s", status, body)
	}
	toG := startGate(t, kdsAddr)
	toG.release()
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), toG.addr(), g.caFile())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, g.caFile())
	const n = 300
	for i := range n {
		dp := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":"backend-%d","networking":{"address":"10.2.%d.%d","inbound":[{"port":9001,"tags":{"atoll.io/service":"backend"}}]}}`, i, i/250, i%250+1)
		if status, body := call(t, "PUT", fmt.Sprintf("%s/meshes/default/dataplanes/backend-%d", z2.apiURL, i), dp); status != http.StatusCreated {
			t.Fatalf("PUT backend-%d: %d %s", i, status, body)
		}
	}
	waitFor(t, syncWait, "zone-1 to hold zone-2's endpoints", func() error {
		if got, err := seCount(t, z1.apiURL); err != nil || got != n {
			return fmt.Errorf("%d endpoints, %v", got, err)
		}
		return nil
	})

	// Watch zone-1's view through the whole restart.
	var least atomic.Int64
	least.Store(n)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if got, err := seCount(t, z1.apiURL); err == nil && int64(got) < least.Load() {
				least.Store(int64(got))
			}
		}
	}()
	g.stop()
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	// One more instance after the restart: once zone-1 has it, its new
	// session has been served.
	dp := `{"type":"Dataplane","mesh":"default","name":"backend-late","networking":{"address":"10.2.9.9","inbound":[{"port":9001,"tags":{"atoll.io/service":"backend"}}]}}`
	if status, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/backend-late", dp); status != http.StatusCreated {
		t.Fatalf("PUT backend-late: %d %s", status, body)
	}
	waitFor(t, syncWait, "zone-1 to hold the instance added after the restart", func() error {
		if got, err := seCount(t, z1.apiURL); err != nil || got != n+1 {
			return fmt.Errorf("%d endpoints, %v", got, err)
		}
		return nil
	})
	close(stop)
	<-watched
	if got := least.Load(); got < n {
		t.Fatalf("zone-1 held only %d of zone-2's %d endpoints during the global's restart", got, n)
	}
	// Nothing of ServiceEndpoints was removed or re-sent on the new session:
	// only the one group that changed.
	if st := identityOf(t, z1); st.Stats["ServiceEndpoints"].Received != 1 {
		t.Fatalf("zone-1's session after the restart received %d ServiceEndpoints changes, want 1 (the new instance's)", st.Stats["ServiceEndpoints"].Received)
	}
}

// A global stopping gracefully records the end of its zones' sessions
// before it closes etcd: restarted where the zone cannot reach it, it shows
// the zone offline at once, not online until its heartbeat ages out.
func TestGlobalRecordsSessionEndsBeforeStopping(t *testing.T) {
	gdir := t.TempDir()
	g := startGlobal(t, gdir)
	startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	waitFor(t, syncWait, "zone-1 online", func() error {
		if status, body := call(t, "GET", g.apiURL+"/zones/zone-1", ""); status != 200 || !strings.Contains(body, `"online":true`) {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	g.stop()
	// Another KDS port: the zone keeps dialling the old one.
	g = startGlobal(t, gdir)
	status, body := call(t, "GET", g.apiURL+"/zones/zone-1", "")
	if status != 200 || !strings.Contains(body, `"online":false`) {
		t.Fatalf("zone-1 after the global stopped with it connected: %d %s, want offline (its session's end recorded)", status, body)
	}
}
