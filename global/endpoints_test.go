package global

import (
	"fmt"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

func storedDP(zone, mesh, name, addr, advertised string, port uint32, ready bool, service string) *resource.Resource {
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: mesh, Name: StoredName(name, zone),
			Labels: map[string]string{resource.ZoneLabel: zone, resource.OriginLabel: resource.OriginZone}},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
			Address: addr, AdvertisedAddress: advertised,
			Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
				Port: port, Tags: map[string]string{resource.ServiceTag: service},
				Health: &v1alpha1.Health{Ready: ready},
			}},
		}},
	}
}

// endpointsOf decodes what a zone would receive, by zone and service.
func endpointsOf(t *testing.T, wire map[string]*v1alpha1.WireResource) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for key, w := range wire {
		r, err := kds.FromWire(resource.ServiceEndpointsType, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := resource.Validate(r); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		se := r.Spec.(*v1alpha1.ServiceEndpoints)
		for _, e := range se.GetEndpoints() {
			k := se.GetZone() + "/" + se.GetService()
			out[k] = append(out[k], fmt.Sprintf("%s:%d", e.GetAddress(), e.GetPort()))
		}
	}
	return out
}

func TestEndpointIndexRelaysOtherZonesInstances(t *testing.T) {
	changes := 0
	x := newEndpointIndex(func([]string) { changes++ })
	x.reset([]*resource.Resource{
		storedDP("zone-2", "default", "backend-1", "10.2.0.1", "", 9001, true, "backend"),
		storedDP("zone-2", "default", "backend-2", "10.2.0.2", "192.0.2.2", 9001, true, "backend"),
		storedDP("zone-2", "default", "sick-1", "10.2.0.3", "", 9001, false, "backend"),
		storedDP("zone-1", "default", "web-1", "10.1.0.1", "", 8080, true, "web"),
		storedDP("zone-2", "other", "db-1", "10.2.0.9", "", 5432, true, "db"),
	})
	direct := map[string]bool{"default": true}
	w1, err := x.desired("zone-1", direct, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := endpointsOf(t, w1)
	// zone-1 gets zone-2's healthy backends (the advertised address when
	// set), not its own web, not the mesh that is not Direct.
	if len(got) != 1 || len(got["zone-2/backend"]) != 2 || got["zone-2/backend"][0] != "10.2.0.1:9001" || got["zone-2/backend"][1] != "192.0.2.2:9001" {
		t.Fatalf("zone-1 receives %v", got)
	}
	if got := endpointsOf(t, mustDesired(t, x, "zone-2", direct, nil)); len(got) != 1 || len(got["zone-1/web"]) != 1 {
		t.Fatalf("zone-2 receives %v", got)
	}
	if got := mustDesired(t, x, "zone-1", direct, map[string]bool{"zone-2": true}); len(got) != 0 {
		t.Fatalf("a disabled zone's endpoints were relayed: %v", got)
	}

	// The same content gives the same version; a change, another one.
	var before string
	for _, w := range w1 {
		before = w.GetVersion()
	}
	n := changes
	x.apply(store.Event{Kind: store.Put, Resource: storedDP("zone-2", "default", "backend-1", "10.2.0.1", "", 9001, true, "backend")})
	for _, w := range mustDesired(t, x, "zone-1", direct, nil) {
		if w.GetVersion() != before {
			t.Errorf("an unchanged Dataplane changed the version: %s → %s", before, w.GetVersion())
		}
	}
	x.apply(store.Event{Kind: store.Put, Resource: storedDP("zone-2", "default", "backend-1", "10.2.0.1", "", 9001, false, "backend")})
	got = endpointsOf(t, mustDesired(t, x, "zone-1", direct, nil))
	if len(got["zone-2/backend"]) != 1 {
		t.Fatalf("after backend-1 turned unhealthy zone-1 receives %v", got)
	}
	x.apply(store.Event{Kind: store.Deleted, Resource: &resource.Resource{Meta: storedDP("zone-2", "default", "backend-2", "", "", 0, true, "").Meta}})
	if got := mustDesired(t, x, "zone-1", direct, nil); len(got) != 0 {
		t.Fatalf("after the last backend went, zone-1 receives %v", endpointsOf(t, got))
	}
	if changes != n+3 {
		t.Errorf("told of %d changes, want 3", changes-n)
	}
}

func mustDesired(t *testing.T, x *endpointIndex, zone string, meshes, skip map[string]bool) map[string]*v1alpha1.WireResource {
	t.Helper()
	w, err := x.desired(zone, meshes, skip)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A Dataplane change names the groups it touched, and those groups by key
// read the same as the whole relay: what a session compares for a change
// is exactly what changed.
func TestEndpointIndexNamesTheGroupsAChangeTouched(t *testing.T) {
	var told [][]string
	x := newEndpointIndex(func(keys []string) { told = append(told, keys) })
	var dps []*resource.Resource
	for i := range 200 {
		dps = append(dps, storedDP(fmt.Sprintf("zone-%d", 2+i%3), "default", fmt.Sprintf("dp-%d", i), fmt.Sprintf("10.2.%d.%d", i/250, i%250+1), "", 9001, true, fmt.Sprintf("svc-%d", i%40)))
	}
	x.reset(dps)
	if len(told) != 1 || told[0] != nil {
		t.Fatalf("a reset told %v, want nil (everything)", told)
	}
	direct := map[string]bool{"default": true}
	// dp-7 (zone-3, svc-7) moves to svc-8: both groups are touched.
	told = nil
	x.apply(store.Event{Kind: store.Put, Resource: storedDP("zone-3", "default", "dp-7", "10.2.0.8", "", 9001, true, "svc-8")})
	want := []string{groupKey{"zone-3", "default", "svc-7"}.wireKey(), groupKey{"zone-3", "default", "svc-8"}.wireKey()}
	if len(told) != 1 || len(told[0]) != 2 || !(told[0][0] == want[0] && told[0][1] == want[1] || told[0][0] == want[1] && told[0][1] == want[0]) {
		t.Fatalf("moving dp-7 told %v, want %v", told, want)
	}
	// By key, zone-1 reads what it reads whole; its own zone, a skipped
	// zone and an unknown key read as absent.
	whole := mustDesired(t, x, "zone-1", direct, nil)
	keys := append(want, "default/se-unknown")
	for k := range whole {
		keys = append(keys, k)
	}
	byKey, err := x.desiredKeys("zone-1", direct, nil, keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameVersions(byKey, whole); err != nil {
		t.Fatal(err)
	}
	own, err := x.desiredKeys("zone-3", direct, nil, want)
	if err != nil || len(own) != 0 {
		t.Fatalf("zone-3 by key reads its own groups: %v %v", own, err)
	}
	skipped, err := x.desiredKeys("zone-1", direct, map[string]bool{"zone-3": true}, want)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("a skipped zone's groups read by key: %v %v", skipped, err)
	}
	// The last instance of a group going removes the group.
	told = nil
	x.apply(store.Event{Kind: store.Deleted, Resource: &resource.Resource{Meta: storedDP("zone-3", "default", "dp-7", "", "", 0, true, "").Meta}})
	after, err := x.desiredKeys("zone-1", direct, nil, want)
	if err != nil || len(told) != 1 {
		t.Fatalf("deleting dp-7: told %v, err %v", told, err)
	}
	if err := sameVersions(after, mustDesired(t, x, "zone-1", direct, nil), want...); err != nil {
		t.Fatal(err)
	}
}

// sameVersions compares got with want, restricted to only when given.
func sameVersions(got, want map[string]*v1alpha1.WireResource, only ...string) error {
	if len(only) > 0 {
		restricted := map[string]*v1alpha1.WireResource{}
		for _, k := range only {
			if w, ok := want[k]; ok {
				restricted[k] = w
			}
		}
		want = restricted
	}
	if len(got) != len(want) {
		return fmt.Errorf("by key %d resources, whole %d", len(got), len(want))
	}
	for k, w := range want {
		if got[k].GetVersion() != w.GetVersion() {
			return fmt.Errorf("%s: by key version %q, whole %q", k, got[k].GetVersion(), w.GetVersion())
		}
	}
	return nil
}
