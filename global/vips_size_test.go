package global

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/vip"
	"github.com/atoll-mesh/atoll/kds"
)

// hopCost is what writing resources costs on each hop: the bytes of the
// etcd puts (key and value, as etcdstore encodes them) and of the KDS
// records the global sends every zone.
type hopCost struct{ etcd, kds int }

func costOf(t *testing.T, rs ...*resource.Resource) hopCost {
	t.Helper()
	var c hopCost
	now := time.Now()
	for _, r := range rs {
		val, err := store.Marshal(store.ForApply(r, now))
		if err != nil {
			t.Fatal(err)
		}
		c.etcd += len(testEtcdPrefix+"resources/"+store.KeyPath(r.Key())) + len(val)
		w, err := kds.ToWire(r, r.Meta.Name)
		if err != nil {
			t.Fatal(err)
		}
		c.kds += proto.Size(w)
	}
	return c
}

// What a new service costs on each hop, with n services in its mesh
// already: one record of the same small size at 100 and at 10,000
// services, where the single table of old grew with every service.
func TestANewServiceCostsOneSmallRecordPerHop(t *testing.T) {
	cidr := netip.MustParsePrefix(vip.DefaultCIDR)
	cidr6 := netip.MustParsePrefix("fd00:a7::/64")
	now := time.Now()
	costs := map[int]hopCost{}
	for _, n := range []int{100, 10000} {
		offered := map[string]bool{}
		for i := range n {
			offered[fmt.Sprintf("service-%05d", i)] = true
		}
		ops, err := vip.Plan(nil, "default", offered, cidr, cidr6, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		records := make([]*resource.Resource, 0, n)
		for _, op := range ops {
			records = append(records, op.Put)
		}
		offered["new-service"] = true
		ops, err = vip.Plan(records, "default", offered, cidr, cidr6, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var written []*resource.Resource
		for _, op := range ops {
			if op.Put == nil {
				t.Fatalf("%d services: adding one deleted %s", n, op.Delete)
			}
			written = append(written, op.Put)
		}
		if len(written) != 1 || written[0].Meta.Name != resource.VIPRecordName("new-service") {
			t.Fatalf("%d services: adding one wrote %d records, want only its own", n, len(written))
		}
		now := costOf(t, written...)
		// Before: the mesh's one table, every entry in it, rewritten whole.
		var entries []*v1alpha1.VIPTable_Entry
		for _, r := range append(records, written...) {
			entries = append(entries, r.Spec.(*v1alpha1.VIPTable).GetEntries()...)
		}
		old := costOf(t, &resource.Resource{
			Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "default", Name: resource.VIPTableName,
				Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
			Spec: &v1alpha1.VIPTable{Entries: entries},
		})
		costs[n] = now
		t.Logf("a new service with %5d in the mesh: %d B to etcd, %d B per KDS hop (one table, before: %d B to etcd, %d B per KDS hop)",
			n, now.etcd, now.kds, old.etcd, old.kds)
		if now.etcd > 250 || now.kds > 150 {
			t.Errorf("%d services: a new service costs %+v bytes, want one small record", n, now)
		}
	}
	// Only the text of the addresses may differ.
	if a, b := costs[100], costs[10000]; absDiff(a.etcd, b.etcd) > 8 || absDiff(a.kds, b.kds) > 8 {
		t.Errorf("a new service's cost depends on how many exist: %+v at 100, %+v at 10,000", a, b)
	}
}

func absDiff(a, b int) int {
	n := a - b
	if n < 0 {
		return -n
	}
	return n
}
