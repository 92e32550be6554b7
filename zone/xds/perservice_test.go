package xds

import (
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// splitSummary is a legacy ZoneIngress (named after its zone, listing
// every service) in the per-service format: the zone's own record with no
// services, and one record per service with the same networking.
func splitSummary(legacy *resource.Resource) []*resource.Resource {
	zi := legacy.Spec.(*v1alpha1.ZoneIngress)
	own := proto.Clone(zi).(*v1alpha1.ZoneIngress)
	own.AvailableServices = nil
	out := []*resource.Resource{{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zi.GetZone()}, Spec: own}}
	for _, s := range zi.GetAvailableServices() {
		out = append(out, &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: resource.ZoneServiceName(zi.GetZone(), s.GetMesh(), s.GetTags(), s.GetPort())},
			Spec: &v1alpha1.ZoneIngress{Zone: zi.GetZone(), Networking: zi.GetNetworking(),
				AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{s}},
		})
	}
	return out
}

// A zone's service summary sent one record per service configures the
// same endpoints as the one record listing them all, in a full build and
// incrementally, with a service's tag sets (one record each) joined into
// one group of the zone.
func TestPerServiceIngressesConfigureAsTheLegacyOne(t *testing.T) {
	legacy := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	zi := legacy.Ingresses[0].Spec.(*v1alpha1.ZoneIngress)
	zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
		Mesh: "default", Tags: map[string]string{resource.ServiceTag: "backend_default_svc_9001", "version": "v2"}, Port: 9001, Instances: 2})
	split := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	split.Ingresses = splitSummary(legacy.Ingresses[0])
	if len(split.Ingresses) != 4 {
		t.Fatalf("split into %d records, want 4", len(split.Ingresses))
	}
	for _, kind := range []Kind{Envoy, Proxyless} {
		want := byName(generate(t, legacy, kind, "kong"), resourcev3.EndpointType)
		got := byName(generate(t, split, kind, "kong"), resourcev3.EndpointType)
		if len(got) != len(want) {
			t.Errorf("kind %v: %d endpoint resources from per-service records, %d from the legacy one", kind, len(got), len(want))
		}
		for name, w := range want {
			if !proto.Equal(got[name], w) {
				t.Errorf("kind %v: %s from per-service records:\n%v\nfrom the legacy one:\n%v", kind, name, got[name], w)
			}
		}
	}
	cla, ok := byName(generate(t, split, Proxyless, "kong"), resourcev3.EndpointType)["backend_default_svc_9001:9001"].(*endpointv3.ClusterLoadAssignment)
	if !ok {
		t.Fatal("no endpoints for backend_default_svc_9001:9001")
	}
	var remote []group
	for _, g := range groups(cla) {
		if g.zone == "zone-2" {
			remote = append(remote, g)
		}
	}
	if len(remote) != 1 || remote[0].weight != 5 {
		t.Errorf("zone-2's backends: %+v, want one group of weight 5 (3 + 2 instances behind its ingress)", remote)
	}

	m := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
	versioned(split.Dataplanes, "1")
	versioned(split.Ingresses, "1")
	versioned(split.Endpoints, "1")
	m.update(split)
	sameResources(t, "per-service records: endpoints", m.eds.GetResources(), generate(t, split, Envoy, "kong")[resourcev3.EndpointType], func(string) bool { return false })
}
