package zone

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/kds"
)

// hopCost is what one change of the zone's summary costs on each hop, in
// bytes: the records the zone writes to its store, its KDS push to the
// global, what the global stores, and the global's push to another zone.
type hopCost struct{ zoneStored, toGlobal, globalStored, relayed int }

func storedSize(t testing.TB, r *resource.Resource) int {
	t.Helper()
	b, err := store.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// pushSize is the size of the KDS message carrying ws.
func pushSize(ws []*v1alpha1.WireResource) int {
	return proto.Size(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: &v1alpha1.Push{
		Type: string(resource.ZoneIngressType), Nonce: "00000001", Resources: ws}}})
}

// costOfANewService measures a new service in a zone offering n: the zone's
// writer and KDS endpoint at work (what the store took, what Desired
// changed), and the global's hops computed as the global stores (the
// record under the zone's name, its labels) and relays (the zone's wire
// form) it.
func costOfANewService(t testing.TB, n int) hopCost {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mem := memstore.New()
	defer mem.Close()
	for i := range n {
		dp := localDP(fmt.Sprintf("dp-%d", i), 8080, true, fmt.Sprintf("service-%05d", i))
		dp.Spec.(*v1alpha1.Dataplane).Networking.Inbound[0].Tags["version"] = "v1"
		if _, err := mem.Create(ctx, dp); err != nil {
			t.Fatal(err)
		}
	}
	st := &countingStore{Store: mem}
	idx := newLocalIndex()
	w := &ingressWriter{store: st, zone: "zone-1", cfg: Ingress{Address: "10.0.0.1", Port: 10001, AdvertisedAddress: "203.0.113.10", AdvertisedPort: 10001}}
	if err := loadLocal(ctx, st, idx, w); err != nil {
		t.Fatal(err)
	}
	cache := store.NewCache(mem, resource.ZoneIngressType)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ep := &globalEndpoint{zone: "zone-1", store: mem, cache: cache, wire: &kds.WireMemo{}, local: idx}
	settled := func(want int) map[string]*v1alpha1.WireResource {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if d, err := ep.Desired(ctx, resource.ZoneIngressType); err == nil && len(d) == want {
				return d
			}
		}
		t.Fatalf("the zone never sent %d records", want)
		return nil
	}
	before := settled(n + 1)

	added := localDP("new-1", 8080, true, "service-new")
	added.Spec.(*v1alpha1.Dataplane).Networking.Inbound[0].Tags["version"] = "v1"
	if _, err := mem.Create(ctx, added); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.apply(store.Event{Kind: store.Put, Resource: added}); err != nil {
		t.Fatal(err)
	}
	first := len(st.applies)
	if _, err := w.update(ctx, idx); err != nil {
		t.Fatal(err)
	}
	var c hopCost
	for _, ops := range st.applies[first:] {
		for _, op := range ops {
			c.zoneStored += storedSize(t, op.Put)
		}
	}
	after := settled(n + 2)
	var sent []*v1alpha1.WireResource
	for k, wr := range after {
		if old, ok := before[k]; !ok || old.GetVersion() != wr.GetVersion() {
			sent = append(sent, wr)
		}
	}
	if len(sent) != 1 {
		t.Fatalf("a new service changed %d records the zone sends, want 1", len(sent))
	}
	c.toGlobal = pushSize(sent)
	r, err := kds.FromWire(resource.ZoneIngressType, sent[0])
	if err != nil {
		t.Fatal(err)
	}
	r.Meta.Name += ".zone-1" // as the global stores it (global.StoredName)
	r.Meta.Labels = map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone}
	r.Meta.CreationTime, r.Meta.ModificationTime = time.Now(), time.Now()
	c.globalStored = storedSize(t, r)
	c.relayed = pushSize(sent)
	return c
}

// legacyCost is the same change in the format before per-service
// records: the one ZoneIngress listing every service, re-sent whole.
func legacyCost(t testing.TB, n int) hopCost {
	var av []*v1alpha1.ZoneIngress_AvailableService
	for i := range n + 1 {
		av = append(av, &v1alpha1.ZoneIngress_AvailableService{Mesh: "default", Port: 8080, Instances: 1,
			Tags: map[string]string{resource.ServiceTag: fmt.Sprintf("service-%05d", i), "version": "v1"}})
	}
	r := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1", Version: "1",
			Labels:       map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone},
			CreationTime: time.Now(), ModificationTime: time.Now()},
		Spec: ingressSpec("zone-1", Ingress{Address: "10.0.0.1", Port: 10001, AdvertisedAddress: "203.0.113.10", AdvertisedPort: 10001}, av),
	}
	w, err := kds.ToWire(r, "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	size := storedSize(t, r)
	return hopCost{zoneStored: size, toGlobal: pushSize([]*v1alpha1.WireResource{w}), globalStored: size, relayed: pushSize([]*v1alpha1.WireResource{w})}
}

// A new service costs one small record on every hop, the same at 100
// services as at 10,000; the whole summary it replaces grows with them.
func TestANewServiceCostsTheSameOnEveryHopAtAnyScale(t *testing.T) {
	costs := map[int]hopCost{}
	for _, n := range []int{100, 10000} {
		c, old := costOfANewService(t, n), legacyCost(t, n)
		costs[n] = c
		t.Logf("a new service at %5d services, bytes per hop: zone store %d (legacy %d), push to the global %d (legacy %d), global store %d (legacy %d), relay to a zone %d (legacy %d)",
			n, c.zoneStored, old.zoneStored, c.toGlobal, old.toGlobal, c.globalStored, old.globalStored, c.relayed, old.relayed)
		if c.toGlobal*10 > old.toGlobal && n >= 100 {
			t.Errorf("at %d services a new service costs %d bytes to the global, the whole summary %d: want a small fraction", n, c.toGlobal, old.toGlobal)
		}
	}
	small, large := costs[100], costs[10000]
	for what, pair := range map[string][2]int{
		"zone store": {small.zoneStored, large.zoneStored}, "push to the global": {small.toGlobal, large.toGlobal},
		"global store": {small.globalStored, large.globalStored}, "relay": {small.relayed, large.relayed},
	} {
		// Equal but for the digits of counts and versions.
		if d := pair[1] - pair[0]; d < -8 || d > 8 {
			t.Errorf("%s: a new service costs %d bytes at 100 services, %d at 10,000: want the same", what, pair[0], pair[1])
		}
	}
}
