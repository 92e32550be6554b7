package zone

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
	"github.com/atoll-mesh/atoll/kds"
)

// countingStore records the operations of every Apply.
type countingStore struct {
	store.Store
	applies [][]store.Op
}

func (s *countingStore) Apply(ctx context.Context, ops []store.Op) error {
	s.applies = append(s.applies, ops)
	return s.Store.Apply(ctx, ops)
}

// since returns the operations applied since the n-th Apply, as "put NAME"
// and "delete NAME".
func (s *countingStore) since(n int) []string {
	var out []string
	for _, ops := range s.applies[n:] {
		for _, op := range ops {
			if op.Put != nil {
				out = append(out, "put "+op.Put.Meta.Name)
			} else {
				out = append(out, "delete "+op.Delete.Name)
			}
		}
	}
	return out
}

func openBolt(t testing.TB, path string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func webName(service string, port uint32) string {
	return resource.ZoneServiceName("zone-1", "default", map[string]string{resource.ServiceTag: service}, port)
}

// ownRecords returns the zone-1 records st holds, by name.
func ownRecords(t testing.TB, st store.Store) map[string]*v1alpha1.ZoneIngress {
	t.Helper()
	items, err := st.List(context.Background(), resource.ZoneIngressType, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1alpha1.ZoneIngress{}
	for _, r := range items {
		if isOwn(r, "zone-1") {
			out[r.Meta.Name] = r.Spec.(*v1alpha1.ZoneIngress)
		}
	}
	return out
}

// The writer writes the zone's own record and one per service, and then,
// on each change, only the record the change moved.
func TestTheSummaryWriterWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	bolt := openBolt(t, filepath.Join(t.TempDir(), "zone.db"))
	defer bolt.Close()
	const n = 100
	for i := range n {
		if _, err := bolt.Create(ctx, localDP(fmt.Sprintf("dp-%d", i), 8080, true, fmt.Sprintf("svc-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	st := &countingStore{Store: bolt}
	idx := newLocalIndex()
	w := &ingressWriter{store: st, zone: "zone-1", cfg: Ingress{Address: "10.0.0.1", Port: 10001}}
	if err := loadLocal(ctx, st, idx, w); err != nil {
		t.Fatal(err)
	}
	if ops := st.since(0); len(st.applies) != 1 || len(ops) != n+1 {
		t.Fatalf("the first write: %d Applies, %d operations, want one Apply of %d records", len(st.applies), len(ops), n+1)
	}
	recs := ownRecords(t, bolt)
	if len(recs) != n+1 || len(recs["zone-1"].GetAvailableServices()) != 0 || recs["zone-1"].GetNetworking().GetAdvertisedPort() != 10001 {
		t.Fatalf("stored %d records, zone-1's own %v: want %d, its own with networking and no services", len(recs), recs["zone-1"], n+1)
	}
	if av := recs[webName("svc-7", 8080)].GetAvailableServices(); len(av) != 1 || av[0].GetInstances() != 1 || av[0].GetTags()[resource.ServiceTag] != "svc-7" {
		t.Fatalf("svc-7's record offers %v, want svc-7 with 1 instance", av)
	}

	steps := []struct {
		what string
		e    store.Event
		want []string
	}{
		{"a new service", store.Event{Kind: store.Put, Resource: localDP("new-1", 8080, true, "new")}, []string{"put " + webName("new", 8080)}},
		{"another instance", store.Event{Kind: store.Put, Resource: localDP("new-2", 8080, true, "new")}, []string{"put " + webName("new", 8080)}},
		{"an address moved", store.Event{Kind: store.Put, Resource: withAddress(localDP("new-2", 8080, true, "new"), "10.0.0.9")}, nil},
		{"an instance unready", store.Event{Kind: store.Put, Resource: localDP("dp-3", 8080, false, "svc-3")}, []string{"delete " + webName("svc-3", 8080)}},
		{"a port moved", store.Event{Kind: store.Put, Resource: localDP("dp-4", 9090, true, "svc-4")}, []string{"put " + webName("svc-4", 9090), "delete " + webName("svc-4", 8080)}},
		{"an instance gone", store.Event{Kind: store.Deleted, Resource: localDP("new-1", 8080, true, "new")}, []string{"put " + webName("new", 8080)}},
		{"gone and back before the write", store.Event{}, nil},
	}
	for _, s := range steps {
		before := len(st.applies)
		if s.e.Resource != nil {
			if _, err := idx.apply(s.e); err != nil {
				t.Fatal(err)
			}
		} else {
			// dp-0 goes and comes back: its record is as stored.
			for _, k := range []store.EventKind{store.Deleted, store.Put} {
				if _, err := idx.apply(store.Event{Kind: k, Resource: localDP("dp-0", 8080, true, "svc-0")}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := w.update(ctx, idx); err != nil {
			t.Fatal(err)
		}
		if got := st.since(before); !slices.Equal(got, s.want) {
			t.Errorf("%s: wrote %v, want %v", s.what, got, s.want)
		}
	}
	if av := ownRecords(t, bolt)[webName("new", 8080)].GetAvailableServices(); len(av) != 1 || av[0].GetInstances() != 1 {
		t.Errorf("new's record offers %v, want 1 instance", av)
	}

	// A failed write is made good by the next, from what the store holds.
	idx.apply(store.Event{Kind: store.Put, Resource: localDP("late", 8080, true, "late")})
	w.store = failingStore{st}
	if _, err := w.update(ctx, idx); err == nil {
		t.Fatal("a write to a failing store succeeded")
	}
	w.store = st
	if wrote, err := w.update(ctx, idx); err != nil || !wrote {
		t.Fatalf("the write after a failed one: wrote %v, %v", wrote, err)
	}
	if _, ok := ownRecords(t, bolt)[webName("late", 8080)]; !ok {
		t.Error("late's record, whose first write failed, was never written")
	}
}

type failingStore struct{ store.Store }

func (failingStore) Apply(context.Context, []store.Op) error { return fmt.Errorf("the store is away") }

// A data dir written by the format before per-service records: the zone's
// ZoneIngress named after it listing every service, as the earlier writer
// created it, and another zone's, as the global sent it.
func writeLegacyDataDir(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	st := openBolt(t, path)
	defer st.Close()
	var av []*v1alpha1.ZoneIngress_AvailableService
	for _, svc := range []string{"web", "api", "db"} {
		if _, err := st.Create(ctx, localDP(svc+"-1", 8080, true, svc)); err != nil {
			t.Fatal(err)
		}
		av = append(av, &v1alpha1.ZoneIngress_AvailableService{Mesh: "default", Tags: map[string]string{resource.ServiceTag: svc}, Port: 8080, Instances: 1})
	}
	legacy := []*resource.Resource{
		{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1",
			Labels: map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone}},
			Spec: ingressSpec("zone-1", Ingress{Address: "10.0.0.1", Port: 10001}, av)},
		{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-2",
			Labels: map[string]string{resource.ZoneLabel: "zone-2", resource.OriginLabel: resource.OriginGlobal}},
			Spec: ingressSpec("zone-2", Ingress{Address: "10.0.0.2", Port: 10001}, av[:1])},
	}
	for _, r := range legacy {
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

// A zone started on a legacy data dir writes its summary in the new
// format, the per-service records before its own record drops the list,
// and keeps another zone's legacy record until the global replaces it.
func TestALegacyDataDirIsRewrittenPerService(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zone.db")
	writeLegacyDataDir(t, path)

	bolt := openBolt(t, path)
	defer bolt.Close()
	st := &countingStore{Store: bolt}
	idx := newLocalIndex()
	w := &ingressWriter{store: st, zone: "zone-1", cfg: Ingress{Address: "10.0.0.1", Port: 10001}}
	if err := loadLocal(ctx, st, idx, w); err != nil {
		t.Fatal(err)
	}
	want := []string{"put " + webName("api", 8080), "put " + webName("db", 8080), "put " + webName("web", 8080)}
	slices.Sort(want)
	ops := st.since(0)
	if len(st.applies) != 1 || len(ops) != 4 || ops[3] != "put zone-1" {
		t.Fatalf("the rewrite applied %v in %d Applies, want the 3 service records then zone-1's own in one", ops, len(st.applies))
	}
	if got := slices.Sorted(slices.Values(ops[:3])); !slices.Equal(got, want) {
		t.Errorf("the rewrite wrote %v first, want %v", got, want)
	}
	recs := ownRecords(t, bolt)
	if len(recs) != 4 || len(recs["zone-1"].GetAvailableServices()) != 0 {
		t.Errorf("after the rewrite zone-1 holds %v", slices.Sorted(maps.Keys(recs)))
	}
	other, err := bolt.Get(ctx, resource.Key{Type: resource.ZoneIngressType, Name: "zone-2"})
	if err != nil || len(other.Spec.(*v1alpha1.ZoneIngress).GetAvailableServices()) != 1 {
		t.Fatalf("zone-2's legacy record: %v %v, want it kept as the global sent it", other, err)
	}

	// The session sends the zone's records, not zone-2's.
	cache := store.NewCache(bolt, resource.ZoneIngressType)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := cache.Start(cctx); err != nil {
		t.Fatal(err)
	}
	ep := &globalEndpoint{zone: "zone-1", store: bolt, cache: cache, wire: &kds.WireMemo{}, local: idx}
	deadline := time.Now().Add(5 * time.Second)
	for len(cache.List(resource.ZoneIngressType, "")) < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	desired, err := ep.Desired(ctx, resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{kds.WireKey("", "zone-1")}
	for _, s := range []string{"api", "db", "web"} {
		wantKeys = append(wantKeys, kds.WireKey("", webName(s, 8080)))
	}
	slices.Sort(wantKeys)
	if got := slices.Sorted(maps.Keys(desired)); !slices.Equal(got, wantKeys) {
		t.Errorf("the zone sends %v, want %v", got, wantKeys)
	}

	// Started again on the rewritten data dir, nothing is written.
	before := len(st.applies)
	w2 := &ingressWriter{store: st, zone: "zone-1", cfg: w.cfg}
	if err := loadLocal(ctx, st, newLocalIndex(), w2); err != nil {
		t.Fatal(err)
	}
	if got := st.since(before); len(got) != 0 {
		t.Errorf("a restart on the new format wrote %v", got)
	}
}

// The zone keeps what the global sends of other zones' summaries, both
// formats, and refuses records of its own or misnamed ones.
func TestTheZoneKeepsOtherZonesSummaryRecords(t *testing.T) {
	ctx := context.Background()
	bolt := openBolt(t, filepath.Join(t.TempDir(), "zone.db"))
	defer bolt.Close()
	guard, err := loadGlobalGuard(filepath.Join(t.TempDir(), globalIdentityFile), "global:5685", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ep := &globalEndpoint{zone: "zone-1", store: bolt, guard: guard}
	svc := func(name string) *v1alpha1.ZoneIngress_AvailableService {
		return &v1alpha1.ZoneIngress_AvailableService{Mesh: "default", Tags: map[string]string{resource.ServiceTag: name}, Port: 8080, Instances: 2}
	}
	record := func(name, zone string, svcs ...*v1alpha1.ZoneIngress_AvailableService) *v1alpha1.WireResource {
		w, err := kds.ToWire(&resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: name},
			Spec: ingressSpec(zone, Ingress{Address: "10.0.0.2", Port: 10001}, svcs)}, name)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	of := func(zone, service string) string {
		return resource.ZoneServiceName(zone, "default", map[string]string{resource.ServiceTag: service}, 8080)
	}
	good := []*v1alpha1.WireResource{
		record("zone-2", "zone-2"),
		record(of("zone-2", "web"), "zone-2", svc("web")),
		record("zone-3", "zone-3", svc("web"), svc("api")), // an older zone
	}
	bad := map[string]struct {
		w   *v1alpha1.WireResource
		why string
	}{
		"this zone's own record":                    {record("zone-1", "zone-1"), "this zone writes its own"},
		"this zone's service record":                {record(of("zone-1", "web"), "zone-1", svc("web")), "this zone writes its own"},
		"another zone's record named for this zone": {record("zone-1", "zone-2", svc("web")), "name it"},
		"a name not matching its service":           {record(of("zone-2", "api"), "zone-2", svc("web")), "name it " + `"` + of("zone-2", "web") + `"`},
		"two services in a service record":          {record(of("zone-2", "db"), "zone-2", svc("web"), svc("api")), "offers 2"},
	}
	if refused, err := ep.Apply(ctx, resource.ZoneIngressType, good, nil); err != nil || len(refused) != 0 {
		t.Fatalf("other zones' records: refused %v, err %v", refused, err)
	}
	for what, b := range bad {
		refused, err := ep.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{b.w}, nil)
		if err != nil {
			t.Fatal(err)
		}
		key := kds.WireKey("", b.w.GetName())
		if why, ok := refused[key]; !ok || !strings.Contains(why, b.why) {
			t.Errorf("%s: refused %q, want a reason saying %q", what, why, b.why)
		}
	}
	items, err := bolt.List(ctx, resource.ZoneIngressType, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range items {
		got[r.Meta.Name] = r.Meta.Labels[resource.ZoneLabel] + "/" + r.Meta.Labels[resource.OriginLabel]
	}
	want := map[string]string{"zone-2": "zone-2/global", of("zone-2", "web"): "zone-2/global", "zone-3": "zone-3/global"}
	if !maps.Equal(got, want) {
		t.Errorf("the zone keeps %v, want %v", got, want)
	}
}

// The index hands the writer only the groups a change moved, so a change
// costs work for those records only, however many the zone offers; after
// a reset, every group.
func TestIndexTakesOnlyTheGroupsAChangeMoved(t *testing.T) {
	x := newLocalIndex()
	var dps []*resource.Resource
	for i := range 1000 {
		dps = append(dps, localDP(fmt.Sprintf("dp-%d", i), 8080, true, fmt.Sprintf("svc-%d", i%500)))
	}
	if err := x.reset(dps); err != nil {
		t.Fatal(err)
	}
	if got, full := x.take(); !full || len(got) != 500 {
		t.Fatalf("after a reset: took %d groups (full %v), want all 500", len(got), full)
	}
	names := func(gs []groupCount) []string {
		var out []string
		for _, g := range gs {
			out = append(out, fmt.Sprintf("%s:%d=%d", g.tags[resource.ServiceTag], g.port, g.n))
		}
		slices.Sort(out)
		return out
	}
	steps := []struct {
		what string
		e    store.Event
		want []string
	}{
		{"an instance added", store.Event{Kind: store.Put, Resource: localDP("x", 8080, true, "svc-1")}, []string{"svc-1:8080=3"}},
		{"an address moved", store.Event{Kind: store.Put, Resource: withAddress(localDP("x", 8080, true, "svc-1"), "10.9.9.9")}, []string{"svc-1:8080=3"}},
		{"a port moved", store.Event{Kind: store.Put, Resource: localDP("x", 9090, true, "svc-1")}, []string{"svc-1:8080=2", "svc-1:9090=1"}},
		{"a last instance gone", store.Event{Kind: store.Deleted, Resource: localDP("x", 9090, true, "svc-1")}, []string{"svc-1:9090=0"}},
	}
	for _, s := range steps {
		if _, err := x.apply(s.e); err != nil {
			t.Fatal(err)
		}
		got, full := x.take()
		if full || len(got) > len(s.want) {
			t.Errorf("%s: took %d groups (full %v), want %v", s.what, len(got), full, s.want)
		} else if !slices.Equal(names(got), s.want) {
			t.Errorf("%s: took %v, want %v", s.what, names(got), s.want)
		}
	}
	if got, _ := x.take(); len(got) != 0 {
		t.Errorf("nothing changed: took %v", names(got))
	}
}
