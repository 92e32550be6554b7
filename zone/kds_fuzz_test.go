package zone

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// FuzzGlobalApply feeds the zone's apply path a push from the global built
// from random bytes, over a store holding the zone's own Dataplane and
// ZoneIngress and what the global sent before. Whatever the global sends,
// the zone never panics, never changes or deletes its own resources, stores
// what it receives as the global's, never takes another zone's ingress or
// endpoints as its own, and refuses only keys the push named.
func FuzzGlobalApply(f *testing.F) {
	wire := func(r *resource.Resource) *v1alpha1.WireResource {
		w, err := kds.ToWire(r, r.Meta.Name)
		if err != nil {
			f.Fatal(err)
		}
		return w
	}
	mesh := func(name string) *resource.Resource {
		return &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: name}, Spec: &v1alpha1.Mesh{}}
	}
	ingress := func(name, zone string) *resource.Resource {
		return &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: name},
			Spec: &v1alpha1.ZoneIngress{Zone: zone, Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.0.0.2", Port: 10001}},
		}
	}
	endpoints := func(zone string) *resource.Resource {
		return &resource.Resource{
			Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: "backend-" + zone},
			Spec: &v1alpha1.ServiceEndpoints{Zone: zone, Service: "backend"},
		}
	}
	seed := func(t resource.Type, upserts []*v1alpha1.WireResource, removed ...string) {
		b, err := proto.Marshal(&v1alpha1.Push{Type: string(t), Resources: upserts, Removed: removed})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(resource.MeshType, []*v1alpha1.WireResource{wire(mesh("default")), wire(mesh("payments"))}, "/old")
	seed(resource.ZoneIngressType, []*v1alpha1.WireResource{wire(ingress("zone-1", "zone-1")), wire(ingress("zone-3", "zone-3")), wire(ingress("zone-4", "zone-1"))}, "/zone-1", "/zone-2")
	seed(resource.ServiceEndpointsType, []*v1alpha1.WireResource{wire(endpoints("zone-1")), wire(endpoints("zone-2"))}, "default/backend-zone-2")
	seed(resource.DataplaneType, nil, "default/dp-1")
	seed(resource.VIPTableType, nil, "default/", "nomesh")

	f.Fuzz(func(t *testing.T, data []byte) {
		push := &v1alpha1.Push{}
		if proto.Unmarshal(data, push) != nil {
			return
		}
		// The session hands Apply only the types a zone receives.
		typ := resource.Type(push.GetType())
		switch typ {
		case resource.MeshType, resource.VIPTableType, resource.ZoneIngressType, resource.ServiceEndpointsType:
		default:
			typ = resource.MeshType
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := memstore.New()
		local := func(r *resource.Resource) *resource.Resource {
			r.Meta.Labels = map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone}
			return r
		}
		global := func(r *resource.Resource, zone string) *resource.Resource {
			r.Meta.Labels = map[string]string{resource.OriginLabel: resource.OriginGlobal}
			if zone != "" {
				r.Meta.Labels[resource.ZoneLabel] = zone
			}
			return r
		}
		for _, r := range []*resource.Resource{
			local(storetest.Dataplane("default", "dp-1", 8080)),
			local(ingress("zone-1", "zone-1")),
			global(mesh("default"), ""),
			global(ingress("zone-2", "zone-2"), "zone-2"),
			global(endpoints("zone-2"), "zone-2"),
		} {
			if _, err := st.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		cache := store.NewCache(st, resource.ZoneIngressType)
		if err := cache.Start(ctx); err != nil {
			t.Fatal(err)
		}
		// A zone in step with its global: no other identity to refuse.
		guard, err := loadGlobalGuard(filepath.Join(t.TempDir(), globalIdentityFile), "global:5685", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ep := &globalEndpoint{zone: "zone-1", store: st, cache: cache, wire: &kds.WireMemo{}, guard: guard}
		before := snapshot(t, st)

		refused, err := ep.Apply(ctx, typ, push.GetResources(), push.GetRemoved())
		if err != nil {
			t.Fatalf("Apply failed as a whole: %v", err)
		}
		named := map[string]bool{}
		for _, w := range push.GetResources() {
			named[kds.WireKey(w.GetMesh(), w.GetName())] = true
		}
		for _, k := range push.GetRemoved() {
			named[k] = true
		}
		for k := range refused {
			if !named[k] {
				t.Errorf("refused %q, which the push did not name", k)
			}
		}

		after := snapshot(t, st)
		for key, r := range before {
			if r.Meta.Labels[resource.OriginLabel] != resource.OriginZone {
				continue
			}
			if now, ok := after[key]; !ok || now.Meta.Version != r.Meta.Version {
				t.Errorf("the global's push changed or deleted the zone's own %s", key)
			}
		}
		for key, r := range after {
			if b, ok := before[key]; ok && b.Meta.Version == r.Meta.Version {
				continue // untouched
			}
			if o := r.Meta.Labels[resource.OriginLabel]; o != resource.OriginGlobal {
				t.Errorf("%s from the global is stored with origin %q", key, o)
			}
			switch spec := r.Spec.(type) {
			case *v1alpha1.ZoneIngress:
				if r.Meta.Name == "zone-1" || spec.GetZone() != r.Meta.Name || r.Meta.Labels[resource.ZoneLabel] != r.Meta.Name {
					t.Errorf("stored ZoneIngress %q of zone %q labelled %q: not another zone's own", r.Meta.Name, spec.GetZone(), r.Meta.Labels[resource.ZoneLabel])
				}
			case *v1alpha1.ServiceEndpoints:
				if z := r.Meta.Labels[resource.ZoneLabel]; z == "zone-1" || z != spec.GetZone() {
					t.Errorf("stored ServiceEndpoints %s of zone %q labelled %q", key, spec.GetZone(), z)
				}
			}
		}
	})
}

// snapshot returns every resource st holds, by key.
func snapshot(t *testing.T, st store.Store) map[resource.Key]*resource.Resource {
	t.Helper()
	out := map[resource.Key]*resource.Resource{}
	for _, d := range resource.Types.All() {
		items, err := st.List(context.Background(), d.Type, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range items {
			out[r.Key()] = r
		}
	}
	return out
}
