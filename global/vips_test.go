package global

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/internal/vip"
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

// GET /meshes/{mesh}/vips lists every record of the mesh (services' own
// and a legacy table not yet migrated, a service's own record first) as
// one list sorted by service, in the same JSON as when one table held
// them all.
func TestVIPsHandlerListsEveryRecordOfTheMesh(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	if err := store.EnsureMesh(ctx, st, "default", resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, r := range []*resource.Resource{
		vip.Record("default", &v1alpha1.VIPTable_Entry{Service: "web", Vip: "240.0.0.2", Vip6: "fd00::2"}),
		vip.Record("default", &v1alpha1.VIPTable_Entry{Service: "backend", Vip: "240.0.0.1", UnusedSince: timestamppb.New(since)}),
		vip.Record("other", &v1alpha1.VIPTable_Entry{Service: "elsewhere", Vip: "240.0.0.9"}),
		{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "default", Name: resource.VIPTableName}, Spec: &v1alpha1.VIPTable{
			Entries: []*v1alpha1.VIPTable_Entry{{Service: "api", Vip: "240.0.0.3"}, {Service: "web", Vip: "240.0.0.7"}}}},
	} {
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /meshes/{mesh}/vips", vipsHandler(st))
	for path, want := range map[string]string{
		"/meshes/default/vips": `{"items":[` +
			`{"service":"api","vip":"240.0.0.3"},` +
			`{"service":"backend","vip":"240.0.0.1","unusedSince":"2026-01-02T03:04:05Z"},` +
			`{"service":"web","vip":"240.0.0.2","vip6":"fd00::2"}],"total":3}`,
		"/meshes/nothing/vips": `{"error":"mesh nothing does not exist"}`,
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if got := strings.TrimSpace(rec.Body.String()); got != want {
			t.Errorf("GET %s:\n got %s\nwant %s", path, got, want)
		}
	}
	if err := store.EnsureMesh(ctx, st, "empty", resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/meshes/empty/vips", nil))
	if got := strings.TrimSpace(rec.Body.String()); got != `{"items":[],"total":0}` {
		t.Errorf("a mesh without VIPs: %s", got)
	}
}
