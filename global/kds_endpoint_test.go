package global

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// endpointFor returns zone's endpoint over st, which holds the default mesh.
func endpointFor(t testing.TB, st store.Store, zone string, maxResources int) *zoneEndpoint {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{}}); err != nil && !store.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cache := store.NewCache(st, resource.MeshType, resource.ZoneType, resource.ZoneInsightType, resource.ZoneIngressType, resource.VIPTableType)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refused"}, []string{"zone", "reason"})
	return &zoneEndpoint{zone: zone, store: st, cache: cache, wire: &kds.WireMemo{}, endpoints: newEndpointIndex(func([]string) {}),
		refused: refused, maxResources: maxResources}
}

// wireDP is a Dataplane as a zone sends it, padded with labels to about
// pad bytes.
func wireDP(t testing.TB, name string, pad int) *v1alpha1.WireResource {
	t.Helper()
	r := storetest.Dataplane("default", name, 8080)
	if pad > 0 {
		r.Meta.Labels = map[string]string{}
		for i := 0; i*260 < pad; i++ {
			r.Meta.Labels[fmt.Sprintf("pad-%05d", i)] = strings.Repeat("x", 250)
		}
	}
	w, err := kds.ToWire(r, name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// storedNames lists the Dataplanes st holds, as "name" sorted.
func storedNames(t testing.TB, st store.Store) string {
	t.Helper()
	items, err := st.List(context.Background(), resource.DataplaneType, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range items {
		names = append(names, r.Meta.Name)
	}
	return strings.Join(names, " ")
}

func TestAZoneIsCappedAtItsResourceLimit(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	// Another zone's resources do not count against zone-1.
	other := endpointFor(t, st, "zone-2", 10)
	if _, err := other.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "x", 0), wireDP(t, "y", 0)}, nil); err != nil {
		t.Fatal(err)
	}
	prev := endpointFor(t, st, "zone-1", 3)
	if _, err := prev.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "a", 0), wireDP(t, "b", 0)}, nil); err != nil {
		t.Fatal(err)
	}

	// A new session counts what the zone keeps from Held.
	ep := endpointFor(t, st, "zone-1", 3)
	if _, err := ep.Held(ctx, resource.DataplaneType); err != nil {
		t.Fatal(err)
	}
	refused, err := ep.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "c", 0), wireDP(t, "d", 0), wireDP(t, "e", 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 || refused["default/c"] != "" {
		t.Fatalf("refused %v, want d and e refused and c stored", refused)
	}
	for key, why := range refused {
		if !strings.Contains(why, "--max-resources-per-zone") || !strings.Contains(why, "3") {
			t.Errorf("%s refused with %q: want the limit and the flag named", key, why)
		}
	}
	if got, want := storedNames(t, st), "a.zone-1 b.zone-1 c.zone-1 x.zone-2 y.zone-2"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}

	// At the cap, updates and removals still apply, and a push that
	// removes one makes room for one.
	updated := wireDP(t, "a", 600)
	refused, err = ep.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{updated, wireDP(t, "f", 0)}, []string{"default/b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 0 {
		t.Errorf("refused %v, want an update, an addition in place of a removal", refused)
	}
	if got, want := storedNames(t, st), "a.zone-1 c.zone-1 f.zone-1 x.zone-2 y.zone-2"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	a, err := st.Get(ctx, resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "a.zone-1"})
	if err != nil || len(a.Meta.Labels) < 3 {
		t.Errorf("a was not updated at the cap: %v %v", a, err)
	}
}

func TestTheCapHoldsWithoutHeld(t *testing.T) {
	// A peer may push before the session asked what it holds: the count
	// is read from the store then.
	ctx := context.Background()
	st := memstore.New()
	first := endpointFor(t, st, "zone-1", 2)
	if _, err := first.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "a", 0), wireDP(t, "b", 0)}, nil); err != nil {
		t.Fatal(err)
	}
	ep := endpointFor(t, st, "zone-1", 2)
	refused, err := ep.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "c", 0), wireDP(t, "c", 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := refused["default/c"]; !ok {
		t.Errorf("refused %v, want c refused: the zone already keeps 2", refused)
	}
}

func TestAResourceTooLargeToStoreIsRefusedAlone(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	st.MaxTxnBytes = 64 << 10
	ep := endpointFor(t, st, "zone-1", 0)
	if _, err := ep.Held(ctx, resource.DataplaneType); err != nil {
		t.Fatal(err)
	}
	push := []*v1alpha1.WireResource{wireDP(t, "ok-1", 0), wireDP(t, "huge", 100<<10), wireDP(t, "ok-2", 40<<10), wireDP(t, "ok-3", 40<<10)}
	refused, err := ep.Apply(ctx, resource.DataplaneType, push, nil)
	if err != nil {
		t.Fatalf("Apply failed as a whole: %v", err)
	}
	why, ok := refused["default/huge"]
	if len(refused) != 1 || !ok {
		t.Fatalf("refused %v, want only huge", refused)
	}
	for _, want := range []string{`"default/huge"`, "65536", "not stored", "make it smaller"} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q does not say %q", why, want)
		}
	}
	if got, want := storedNames(t, st), "ok-1.zone-1 ok-2.zone-1 ok-3.zone-1"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}

	// The session goes on: the next push applies, and the refused
	// resource does not count against the zone's cap.
	refused, err = ep.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "ok-4", 0)}, []string{"default/ok-1"})
	if err != nil || len(refused) != 0 {
		t.Fatalf("next push: refused %v, err %v", refused, err)
	}
	if got, want := storedNames(t, st), "ok-2.zone-1 ok-3.zone-1 ok-4.zone-1"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	if n, _ := ep.stored(ctx, resource.DataplaneType); n != 3 {
		t.Errorf("the zone is counted at %d resources, want 3", n)
	}
}

// A zone's ZoneIngress may offer services only in meshes that exist: one
// naming another mesh is refused whole, and the last good one stays.
func TestAZoneIngressNamesOnlyExistingMeshes(t *testing.T) {
	st := memstore.New()
	ep := endpointFor(t, st, "zone-1", 100)
	ingress := func(meshes ...string) *v1alpha1.WireResource {
		zi := &v1alpha1.ZoneIngress{Zone: "zone-1", Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.0.0.1", Port: 10001}}
		for _, m := range meshes {
			zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
				Mesh: m, Tags: map[string]string{resource.ServiceTag: "backend"}, Port: 9001, Instances: 1})
		}
		w, err := kds.ToWire(&resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1"}, Spec: zi}, "zone-1")
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	ctx := context.Background()
	if refused, err := ep.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{ingress("default")}, nil); err != nil || len(refused) != 0 {
		t.Fatalf("a ZoneIngress of the default mesh: %v %v", refused, err)
	}
	refused, err := ep.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{ingress("default", "ghost")}, nil)
	if err != nil || !strings.Contains(refused[kds.WireKey("", "zone-1")], `mesh "ghost", which does not exist`) {
		t.Fatalf("a ZoneIngress naming mesh ghost: refused %v, err %v", refused, err)
	}
	stored, err := st.Get(ctx, resource.Key{Type: resource.ZoneIngressType, Name: "zone-1"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(stored.Spec.(*v1alpha1.ZoneIngress).GetAvailableServices()); n != 1 {
		t.Errorf("the stored ZoneIngress offers %d services, want the last good one's 1", n)
	}
}

// A zone's earlier session writes nothing once its next session has read
// what the zone holds (Held), on this replica or another: a push of the
// earlier session still in flight at etcd would otherwise land unseen by
// the next, which would never remove it.
func TestAnEarlierSessionOfAZoneWritesNothingOnceTheNextHasRead(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	earlier := endpointFor(t, etcdstore.New(client, "/test/"), "zone-1", 0)
	if _, err := earlier.Held(ctx, resource.DataplaneType); err != nil {
		t.Fatal(err)
	}
	if refused, err := earlier.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "dp-1", 0)}, nil); err != nil || len(refused) > 0 {
		t.Fatalf("the only session's push: refused %v, err %v", refused, err)
	}
	// The zone connects again, here through another global replica.
	next := endpointFor(t, etcdstore.New(client, "/test/"), "zone-1", 0)
	held, err := next.Held(ctx, resource.DataplaneType)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 {
		t.Fatalf("the next session reads %v held, want dp-1", held)
	}
	_, err = earlier.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "dp-late", 0)}, []string{"default/dp-1"})
	if !store.IsFenced(err) || !strings.Contains(err.Error(), "new session took over") {
		t.Fatalf("the earlier session's late push: got %v, want it refused as replaced", err)
	}
	if got, want := storedNames(t, next.store), "dp-1.zone-1"; got != want {
		t.Fatalf("stored %q, want %q: the late push must change nothing", got, want)
	}
	if refused, err := next.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "dp-2", 0)}, []string{"default/dp-1"}); err != nil || len(refused) > 0 {
		t.Fatalf("the next session's push: refused %v, err %v", refused, err)
	}
	if got, want := storedNames(t, next.store), "dp-2.zone-1"; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	// Another zone's session is not affected.
	other := endpointFor(t, etcdstore.New(client, "/test/"), "zone-2", 0)
	if refused, err := other.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "dp-1", 0)}, nil); err != nil || len(refused) > 0 {
		t.Fatalf("zone-2's push: refused %v, err %v", refused, err)
	}
}
