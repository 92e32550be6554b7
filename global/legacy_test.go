package global

import (
	"context"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/vip"
	"github.com/atoll-mesh/atoll/kds"
)

// A zone of a version before per-service records is sent what it knows:
// each other zone's summary gathered into one ZoneIngress named after the
// zone (a per-service record winning over the same service still listed
// in a legacy record), and each mesh's VIPs as one VIPTable "vips"; never
// its own zone's, never a record it would refuse. A zone of this version
// gets the records themselves.
func TestAnOlderZoneIsSentOneSummaryPerZoneAndOneVIPTablePerMesh(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	web, api, db := service{"default", "web", 8080, 2}, service{"default", "api", 9000, 1}, service{"default", "db", 5432, 1}
	// zone-2 upgraded: its own record and one per service. zone-3 older:
	// one record listing its services. zone-1, older, receives.
	z2 := endpointFor(t, st, "zone-2", 0)
	if refused, err := z2.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{
		summaryRecord(t, "zone-2", "zone-2", service{"default", "api", 9000, 7}), // mid-migration: api listed too
		serviceRecord(t, "zone-2", web), serviceRecord(t, "zone-2", api)}, nil); err != nil || len(refused) != 0 {
		t.Fatalf("zone-2: refused %v, err %v", refused, err)
	}
	z3 := endpointFor(t, st, "zone-3", 0)
	if refused, err := z3.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{summaryRecord(t, "zone-3", "zone-3", db)}, nil); err != nil || len(refused) != 0 {
		t.Fatalf("zone-3: refused %v, err %v", refused, err)
	}
	for _, e := range []*v1alpha1.VIPTable_Entry{{Service: "web", Vip: "240.0.0.1"}, {Service: "api", Vip: "240.0.0.2"}} {
		if _, err := st.Create(ctx, vip.Record("default", e)); err != nil {
			t.Fatal(err)
		}
	}
	old := endpointFor(t, st, "zone-1", 0)
	old.legacy = true
	deadline := time.Now().Add(10 * time.Second)
	for len(old.cache.List(resource.ZoneIngressType, "")) != 4 || len(old.cache.List(resource.VIPTableType, "")) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the cache never held the records")
		}
		time.Sleep(5 * time.Millisecond)
	}

	zis, err := old.Desired(ctx, resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	if len(zis) != 2 || zis[kds.WireKey("", "zone-2")] == nil || zis[kds.WireKey("", "zone-3")] == nil {
		t.Fatalf("the older zone is sent %d ZoneIngresses %v, want zone-2's and zone-3's", len(zis), zis)
	}
	counts := map[string]uint32{}
	for key, w := range zis {
		r, err := kds.FromWire(resource.ZoneIngressType, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := resource.Validate(r); err != nil || r.Meta.Name != r.Spec.(*v1alpha1.ZoneIngress).GetZone() {
			t.Fatalf("%s is not a zone's own summary: %v", key, err)
		}
		if r.Spec.(*v1alpha1.ZoneIngress).GetNetworking().GetAdvertisedAddress() == "" {
			t.Errorf("%s has no ingress address", key)
		}
		for _, a := range r.Spec.(*v1alpha1.ZoneIngress).GetAvailableServices() {
			counts[r.Meta.Name+"/"+a.GetTags()[resource.ServiceTag]] += a.GetInstances()
		}
	}
	want := map[string]uint32{"zone-2/web": 2, "zone-2/api": 1, "zone-3/db": 1}
	if len(counts) != len(want) {
		t.Fatalf("the summaries count %v, want %v", counts, want)
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("the summaries count %v, want %v", counts, want)
		}
	}
	if keyed, err := old.DesiredKeys(ctx, resource.ZoneIngressType, []string{kds.WireKey("", "zone-2")}); err != kds.ErrFullCompare {
		t.Errorf("an older zone's summaries read by key: %v %v; they are gathered whole", keyed, err)
	}

	vips, err := old.Desired(ctx, resource.VIPTableType)
	if err != nil {
		t.Fatal(err)
	}
	w := vips[kds.WireKey("default", resource.VIPTableName)]
	if len(vips) != 1 || w == nil {
		t.Fatalf("the older zone is sent VIP tables %v, want default/vips", vips)
	}
	r, err := kds.FromWire(resource.VIPTableType, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := resource.Validate(r); err != nil || len(r.Spec.(*v1alpha1.VIPTable).GetEntries()) != 2 {
		t.Fatalf("default/vips: %v, %v", r.Spec, err)
	}

	// This version's zone gets the records.
	now := endpointFor(t, st, "zone-4", 0)
	if got, err := now.Desired(ctx, resource.ZoneIngressType); err != nil || len(got) != 4 {
		t.Errorf("a current zone is sent %d ZoneIngresses (%v), want the 4 records", len(got), err)
	}
}
