package global

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// VIP records written for a mesh that is then deleted (a reconcile that
// read the mesh just before the API deleted it) are removed by the next
// reconcile; records whose mesh the cache has not seen yet but the store
// holds are kept.
func TestVIPAllocatorRemovesTablesOfDeletedMeshes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := memstore.New()
	mesh := func(name string) *resource.Resource {
		return &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: name}, Spec: &v1alpha1.Mesh{}}
	}
	for _, name := range []string{"default", "payments"} {
		if _, err := st.Create(ctx, mesh(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, offering("zone-1", map[string][]string{"default": {"backend"}, "payments": {"ledger", "fx"}})); err != nil {
		t.Fatal(err)
	}
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.VIPTableType)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := newVIPAllocator(st, cache, netip.MustParsePrefix("240.0.0.0/4"), time.Minute, slog.New(slog.DiscardHandler))
	tables := func() map[string]bool {
		t.Helper()
		items, err := st.List(ctx, resource.VIPTableType, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, r := range items {
			out[r.Meta.Mesh] = true
		}
		return out
	}
	settle := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: tables %v", what, tables())
			}
		}
	}
	if err := a.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tables(); !got["default"] || !got["payments"] {
		t.Fatalf("every mesh with services gets records: %v", got)
	}

	// payments is deleted without its records, as in the race.
	if err := st.Delete(ctx, resource.Key{Type: resource.MeshType, Name: "payments"}, ""); err != nil {
		t.Fatal(err)
	}
	settle("the cache sees the deletion", func() bool {
		_, err := cache.Get(resource.Key{Type: resource.MeshType, Name: "payments"})
		return store.IsNotFound(err)
	})
	if err := a.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tables(); !got["default"] || got["payments"] {
		t.Fatalf("after payments was deleted: tables %v, want only default's", got)
	}

	// A mesh the store holds keeps its table even when the cache does not
	// list it yet (as if no mesh were cached).
	if err := a.collect(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := tables(); !got["default"] {
		t.Errorf("the table of a mesh the store holds was deleted: %v", got)
	}
}

// offering is a ZoneIngress of zone offering services, by mesh, as one
// record (an older zone's format; Offered reads both).
func offering(zone string, services map[string][]string) *resource.Resource {
	zi := &v1alpha1.ZoneIngress{Zone: zone}
	for mesh, ss := range services {
		for _, s := range ss {
			zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
				Mesh: mesh, Tags: map[string]string{resource.ServiceTag: s}, Instances: 1, Port: 80,
			})
		}
	}
	return &resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone}, Spec: zi}
}
