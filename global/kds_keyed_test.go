package global

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/kds"
)

// What a session reads by key is what it reads whole, for the relayed
// ZoneIngress records (each zone's own and per-service ones, none of the
// receiving zone's, none of a disabled zone's) and the VIP records; a
// deleted record reads as absent.
func TestResourcesReadByKeyAreThoseReadWhole(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	names := &ingressNames{byWire: map[string]string{}}
	zones := map[string]*zoneEndpoint{}
	for _, z := range []string{"zone-1", "zone-2", "zone-3"} {
		e := endpointFor(t, st, z, 0)
		e.ingressNames = names
		zones[z] = e
	}
	cache := zones["zone-1"].cache // one cache, as a global has
	for _, e := range zones {
		e.cache = cache
	}
	cache.SubscribeKeys(func(ty resource.Type, key *resource.Key) {
		switch {
		case ty == resource.ZoneIngressType && key != nil:
			names.note(cache, zones["zone-1"].wire, *key)
		case ty == resource.ZoneIngressType:
			names.reset(cache)
		}
	})
	web, api := service{"default", "web", 8080, 2}, service{"default", "api", 9000, 1}
	for _, z := range []string{"zone-2", "zone-3"} {
		push := []*v1alpha1.WireResource{summaryRecord(t, z, z), serviceRecord(t, z, web), serviceRecord(t, z, api)}
		if refused, err := zones[z].Apply(ctx, resource.ZoneIngressType, push, nil); err != nil || len(refused) != 0 {
			t.Fatalf("%s: refused %v, err %v", z, refused, err)
		}
	}
	if _, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "default", Name: resource.VIPRecordName("web")},
		Spec: &v1alpha1.VIPTable{Entries: []*v1alpha1.VIPTable_Entry{{Service: "web", Vip: "240.0.0.9"}}}}); err != nil {
		t.Fatal(err)
	}
	waitForCache(t, zones["zone-1"], 6)

	check := func(zone string, ty resource.Type, extra ...string) {
		t.Helper()
		e := zones[zone]
		whole, err := e.Desired(ctx, ty)
		if err != nil {
			t.Fatal(err)
		}
		keys := append(slices.Collect(maps.Keys(whole)), extra...)
		byKey, err := e.DesiredKeys(ctx, ty, keys)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameVersions(byKey, whole); err != nil {
			t.Errorf("%s, %s: %v", zone, ty, err)
		}
	}
	// zone-2's own records, asked by key, are not sent back to it.
	own := []string{kds.WireKey("", "zone-2"), kds.WireKey("", serviceName("zone-2", web))}
	check("zone-1", resource.ZoneIngressType, "/unknown")
	check("zone-2", resource.ZoneIngressType, own...)
	check("zone-1", resource.VIPTableType, "default/vip-unknown")
	if got, _ := zones["zone-1"].DesiredKeys(ctx, resource.ZoneIngressType, own); len(got) != 2 {
		t.Fatalf("zone-1 reads %d of zone-2's records by key, want 2", len(got))
	}

	// A disabled zone's records read as absent; a removed record too.
	disabled := false
	if _, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-2"}, Spec: &v1alpha1.Zone{Enabled: &disabled}}); err != nil && !store.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if refused, err := zones["zone-3"].Apply(ctx, resource.ZoneIngressType, nil, []string{kds.WireKey("", serviceName("zone-3", api))}); err != nil || len(refused) != 0 {
		t.Fatalf("removing zone-3's api: refused %v, err %v", refused, err)
	}
	for i := 0; len(zones["zone-1"].disabledZones()) != 1 || len(cache.List(resource.ZoneIngressType, "")) != 5; i++ {
		if i == 1000 {
			t.Fatal("the cache never held the disabled zone and the removal")
		}
		time.Sleep(5 * time.Millisecond)
	}
	check("zone-1", resource.ZoneIngressType, own...)
	got, err := zones["zone-1"].DesiredKeys(ctx, resource.ZoneIngressType, append(own, kds.WireKey("", serviceName("zone-3", api))))
	if err != nil || len(got) != 0 {
		t.Fatalf("zone-1 reads %v by key of a disabled zone and a removed record (err %v)", slices.Collect(maps.Keys(got)), err)
	}
}
