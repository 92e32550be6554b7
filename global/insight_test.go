package global

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/kds"
)

// replica is one global replica's zoneSync over a shared store.
func replica(t *testing.T, st store.Store, instance string) *zoneSync {
	t.Helper()
	cache := store.NewCache(st, resource.MeshType, resource.ZoneType, resource.ZoneInsightType,
		resource.ZoneIngressType, resource.VIPTableType)
	return newZoneSync(st, cache, instance, 0, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func newSession() *kds.Session { return kds.NewSession(nil, nil, kds.SessionConfig{}) }

// start claims zone for s on z and starts it, as the KDS server does for
// a zone process's reconnect (the same instance each time).
func start(t *testing.T, z *zoneSync, zone string, s *kds.Session) {
	if err := z.Claim(zone, kds.Peer{Instance: "zone-process"}, s, func() {}); err != nil {
		t.Errorf("claiming %s: %v", zone, err)
		return
	}
	z.Started(zone, s)
}

// zoneView is what GET /zones/{name} says about zone, as a user sees it.
func zoneView(t *testing.T, st store.Store, zone string) ZoneView {
	t.Helper()
	mux := http.NewServeMux()
	(&zonesAPI{store: st, offlineAfter: time.Minute}).register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/zones/"+zone, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /zones/%s: %d %s", zone, rec.Code, rec.Body)
	}
	var v ZoneView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func insightOf(t *testing.T, st store.Store, zone string) []*v1alpha1.KDSSubscription {
	t.Helper()
	r, err := st.Get(context.Background(), resource.Key{Type: resource.ZoneInsightType, Name: zone})
	if err != nil {
		t.Fatal(err)
	}
	return r.Spec.(*v1alpha1.ZoneInsight).GetSubscriptions()
}

func etcdStore(t *testing.T) store.Store {
	t.Helper()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/atoll-test/resources/")
	if _, err := st.Create(context.Background(), &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-1"}, Spec: &v1alpha1.Zone{},
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// A zone moved from replica A to replica B stays online when A notices the
// end of its old session late, even when A's record of that old session's
// start reached etcd after B's record of the new one.
func TestInsightOfAReplacedSessionNeverMarksTheZoneOffline(t *testing.T) {
	st := etcdStore(t)
	a, b := replica(t, st, "replica-a"), replica(t, st, "replica-b")
	old := newSession()
	current := newSession() // connected after old
	start(t, b, "zone-1", current)
	start(t, a, "zone-1", old) // a slow write, landing last
	a.Ended("zone-1", old, io.EOF)

	v := zoneView(t, st, "zone-1")
	if !v.Online || v.Global != "replica-b" {
		t.Fatalf("zone-1 = online %t via %q, want online via replica-b (its live session)", v.Online, v.Global)
	}
	subs := insightOf(t, st, "zone-1")
	if len(subs) != 2 {
		t.Fatalf("insight holds %d subscriptions, want both sessions", len(subs))
	}
	if subs[1].GetGlobalInstanceId() != "replica-a" || subs[1].GetDisconnectTime() == nil {
		t.Fatalf("the old session's entry = %v, want replica-a's, closed", subs[1])
	}

	// When the live session ends too, the zone is offline.
	b.Ended("zone-1", current, io.EOF)
	if v := zoneView(t, st, "zone-1"); v.Online {
		t.Fatal("zone-1 is online after its only live session ended")
	}
}

// interleaved runs between a writer's read and its write, once: another
// replica's write lands in that gap.
type interleaved struct {
	store.Store
	once sync.Once
	gap  func()
}

func (s *interleaved) Get(ctx context.Context, key resource.Key) (*resource.Resource, error) {
	r, err := s.Store.Get(ctx, key)
	s.once.Do(s.gap)
	return r, err
}

// Two replicas writing one insight at once both keep their subscription:
// the write that lost the compare-and-swap reads again.
func TestInsightWritesOfTwoReplicasDoNotLoseEachOther(t *testing.T) {
	st := etcdStore(t)
	b := replica(t, st, "replica-b")
	sb := newSession()
	sa := newSession()
	start(t, b, "zone-1", sb)
	a := replica(t, &interleaved{Store: st, gap: func() { start(t, b, "zone-1", newSession()) }}, "replica-a")
	start(t, a, "zone-1", sa)

	ids := map[string]bool{}
	for _, s := range insightOf(t, st, "zone-1") {
		ids[s.GetGlobalInstanceId()] = true
	}
	if !ids["replica-a"] || !ids["replica-b"] {
		t.Fatalf("insight holds sessions of %v, want replica-a's and replica-b's", ids)
	}
	subs := insightOf(t, st, "zone-1")
	if len(subs) != 3 {
		t.Fatalf("insight holds %d subscriptions, want 3 (b's two, a's one)", len(subs))
	}
}

// Many refreshes at once from two replicas lose no session and leave the
// newest connection first.
func TestConcurrentInsightRefreshesKeepEverySession(t *testing.T) {
	st := etcdStore(t)
	a, b := replica(t, st, "replica-a"), replica(t, st, "replica-b")
	la := &liveSession{session: newSession(), subID: "a-1"}
	lb := &liveSession{session: newSession(), subID: "b-1"}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(2)
		go func() { defer wg.Done(); a.writeInsight(context.Background(), "zone-1", la, false) }()
		go func() { defer wg.Done(); b.writeInsight(context.Background(), "zone-1", lb, false) }()
	}
	wg.Wait()
	subs := insightOf(t, st, "zone-1")
	if len(subs) != 2 || subs[0].GetId() != "b-1" || subs[1].GetId() != "a-1" {
		var got []string
		for _, s := range subs {
			got = append(got, s.GetId())
		}
		t.Fatalf("subscriptions = %v, want [b-1 a-1] (newest connection first)", got)
	}
}

// The end of a session of a zone that was deleted (its insight drained)
// does not bring the insight back.
func TestEndedSessionOfADrainedZoneWritesNothing(t *testing.T) {
	st := etcdStore(t)
	a := replica(t, st, "replica-a")
	s := newSession()
	start(t, a, "zone-1", s)
	if err := st.Delete(context.Background(), resource.Key{Type: resource.ZoneInsightType, Name: "zone-1"}, ""); err != nil {
		t.Fatal(err)
	}
	a.Ended("zone-1", s, io.EOF)
	if _, err := st.Get(context.Background(), resource.Key{Type: resource.ZoneInsightType, Name: "zone-1"}); !store.IsNotFound(err) {
		t.Fatalf("insight after the drained zone's session ended: %v, want not found", err)
	}
}

// A zone that reconnects to the same replica has its old session closed in
// the insight, and stays online through its new one.
func TestInsightClosesASessionReplacedOnTheSameReplica(t *testing.T) {
	st := etcdStore(t)
	a := replica(t, st, "replica-a")
	old, current := newSession(), newSession()
	start(t, a, "zone-1", old)
	start(t, a, "zone-1", current)
	a.Ended("zone-1", old, io.EOF)
	subs := insightOf(t, st, "zone-1")
	if len(subs) != 2 || subs[0].GetDisconnectTime() != nil || subs[1].GetDisconnectTime() == nil {
		t.Fatalf("subscriptions = %v, want the new one open first and the replaced one closed", subs)
	}
	if v := zoneView(t, st, "zone-1"); !v.Online {
		t.Fatal("zone-1 offline while its new session runs")
	}
}
