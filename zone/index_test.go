package zone

import (
	"fmt"
	"maps"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

func localDP(name string, port uint32, ready bool, services ...string) *resource.Resource {
	dp := &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{Address: "10.0.0.1"}}
	for _, s := range services {
		dp.Networking.Inbound = append(dp.Networking.Inbound, &v1alpha1.Dataplane_Networking_Inbound{
			Port: port, Tags: map[string]string{resource.ServiceTag: s},
			Health: &v1alpha1.Health{Ready: ready},
		})
	}
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: name,
			Labels: map[string]string{resource.OriginLabel: resource.OriginZone}},
		Spec: dp,
	}
}

func withAddress(r *resource.Resource, addr string) *resource.Resource {
	r.Spec.(*v1alpha1.Dataplane).Networking.Address = addr
	return r
}

// The index says when a change moves instance counts, so the ZoneIngress is
// recomputed for those changes only.
func TestIndexReportsOnlyChangesThatMoveCounts(t *testing.T) {
	x := newLocalIndex()
	steps := []struct {
		what string
		e    store.Event
		want bool
		n    map[string]uint32 // service → instances afterwards
	}{
		{"new instance", store.Event{Kind: store.Put, Resource: localDP("a", 80, true, "web")}, true, map[string]uint32{"web": 1}},
		{"second instance", store.Event{Kind: store.Put, Resource: localDP("b", 80, true, "web")}, true, map[string]uint32{"web": 2}},
		{"address moved", store.Event{Kind: store.Put, Resource: withAddress(localDP("a", 80, true, "web"), "10.0.0.9")}, false, map[string]uint32{"web": 2}},
		{"port moved", store.Event{Kind: store.Put, Resource: localDP("a", 81, true, "web")}, true, map[string]uint32{"web": 2}},
		{"turned unhealthy", store.Event{Kind: store.Put, Resource: localDP("a", 81, false, "web")}, true, map[string]uint32{"web": 1}},
		{"unhealthy port moved", store.Event{Kind: store.Put, Resource: localDP("a", 82, false, "web")}, false, map[string]uint32{"web": 1}},
		{"service renamed", store.Event{Kind: store.Put, Resource: localDP("b", 80, true, "api")}, true, map[string]uint32{"api": 1}},
		{"deleted", store.Event{Kind: store.Deleted, Resource: localDP("b", 80, true, "api")}, true, map[string]uint32{}},
		{"deleted twice", store.Event{Kind: store.Deleted, Resource: localDP("b", 80, true, "api")}, false, map[string]uint32{}},
	}
	for _, s := range steps {
		got, err := x.apply(s.e)
		if err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		if got != s.want {
			t.Errorf("%s: counts changed = %v, want %v", s.what, got, s.want)
		}
		have := map[string]uint32{}
		for _, a := range x.available() {
			have[a.GetTags()[resource.ServiceTag]] += a.GetInstances()
		}
		if len(have) != len(s.n) {
			t.Errorf("%s: available %v, want %v", s.what, have, s.n)
		}
		for svc, n := range s.n {
			if have[svc] != n {
				t.Errorf("%s: %s has %d instances, want %d", s.what, svc, have[svc], n)
			}
		}
	}
}

// Other zones are offered a Kubernetes-form service at its Service port,
// as one group however many ports its pods listen on.
func TestIndexOffersKubernetesServicesAtTheirServicePort(t *testing.T) {
	x := newLocalIndex()
	for _, r := range []*resource.Resource{
		localDP("a", 8080, true, "web_shop_svc_80"),
		localDP("b", 8081, true, "web_shop_svc_80"), // mid-rollout of a targetPort change
		localDP("c", 9001, true, "backend"),
	} {
		if _, err := x.apply(store.Event{Kind: store.Put, Resource: r}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, a := range x.available() {
		got[a.GetTags()[resource.ServiceTag]] += fmt.Sprintf("%d×%d ", a.GetPort(), a.GetInstances())
	}
	want := map[string]string{"web_shop_svc_80": "80×2 ", "backend": "9001×1 "}
	if !maps.Equal(got, want) {
		t.Errorf("available %v, want %v", got, want)
	}
}
