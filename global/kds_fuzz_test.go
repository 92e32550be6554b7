package global

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/kds"
)

// FuzzZoneApply feeds the global's apply path a push from zone-1 built
// from random bytes, over a store that holds zone-1's and zone-2's
// resources. Whatever zone-1 sends, the global never panics, never stores
// anything as another zone's or under another zone's name, never changes
// or deletes another zone's resources or global ones, keeps zone-1 within
// its cap, and refuses only keys the push named.
func FuzzZoneApply(f *testing.F) {
	const limit = 4
	seed := func(t resource.Type, upserts []*v1alpha1.WireResource, removed ...string) {
		b, err := proto.Marshal(&v1alpha1.Push{Type: string(t), Resources: upserts, Removed: removed})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	zi := func(zone string) *v1alpha1.WireResource {
		w, err := kds.ToWire(&resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone},
			Spec: &v1alpha1.ZoneIngress{Zone: zone, Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.0.0.1", Port: 10001}},
		}, zone)
		if err != nil {
			f.Fatal(err)
		}
		return w
	}
	spoof := wireDP(f, "c", 0)
	spoof.Labels = map[string]string{resource.ZoneLabel: "zone-2"}
	seed(resource.DataplaneType, []*v1alpha1.WireResource{wireDP(f, "b", 0), wireDP(f, "c", 0)}, "default/a")
	seed(resource.DataplaneType, []*v1alpha1.WireResource{spoof}, "default/x", "default/x.zone-2", "/default", "nomesh")
	seed(resource.DataplaneType, []*v1alpha1.WireResource{wireDP(f, "b", 0), wireDP(f, "c", 0), wireDP(f, "d", 0), wireDP(f, "e", 0)})
	seed(resource.ZoneIngressType, []*v1alpha1.WireResource{zi("zone-1"), zi("zone-2")}, "/zone-2")
	seed(resource.ZoneIngressType, nil, "/zone-1")
	seed("Mesh", []*v1alpha1.WireResource{{Name: "default"}}, "/default")

	f.Fuzz(func(t *testing.T, data []byte) {
		push := &v1alpha1.Push{}
		if proto.Unmarshal(data, push) != nil {
			return
		}
		// The session hands Apply only the types a zone sends.
		typ := resource.Type(push.GetType())
		if typ != resource.DataplaneType && typ != resource.ZoneIngressType {
			typ = resource.DataplaneType
		}
		ctx := context.Background()
		st := memstore.New()
		z2 := endpointFor(t, st, "zone-2", limit)
		if _, err := z2.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "x", 0)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := z2.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{zi("zone-2")}, nil); err != nil {
			t.Fatal(err)
		}
		ep := endpointFor(t, st, "zone-1", limit)
		if _, err := ep.Apply(ctx, resource.DataplaneType, []*v1alpha1.WireResource{wireDP(t, "a", 0)}, nil); err != nil {
			t.Fatal(err)
		}
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
		zone1 := 0
		for key, r := range after {
			owner := r.Meta.Labels[resource.ZoneLabel]
			if owner != "zone-1" {
				if b, ok := before[key]; !ok || b.Meta.Version != r.Meta.Version {
					t.Errorf("%s (zone %q) was written by zone-1's push", key, owner)
				}
				continue
			}
			zone1++
			if r.Meta.Labels[resource.OriginLabel] != resource.OriginZone {
				t.Errorf("%s is stored with origin %q, want zone", key, r.Meta.Labels[resource.OriginLabel])
			}
			if ok := strings.HasSuffix(r.Meta.Name, ".zone-1") || (key.Type == resource.ZoneIngressType && r.Meta.Name == "zone-1"); !ok {
				t.Errorf("zone-1 stored %s, a name outside its own", key)
			}
		}
		for key, r := range before {
			if _, ok := after[key]; !ok && r.Meta.Labels[resource.ZoneLabel] != "zone-1" {
				t.Errorf("zone-1's push deleted %s of zone %q", key, r.Meta.Labels[resource.ZoneLabel])
			}
		}
		if zone1 > limit {
			t.Errorf("zone-1 keeps %d resources, over its cap of %d", zone1, limit)
		}
		if n, err := ep.stored(ctx, typ); err != nil || n != zone1 {
			t.Errorf("zone-1 is counted at %d resources (%v), but keeps %d", n, err, zone1)
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
