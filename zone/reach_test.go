package zone

import (
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// A service is reachable from zone-1 through its local instances, or
// another zone's by the mesh's cross-zone mode; the view says how, or what
// is missing.
func TestServiceReachability(t *testing.T) {
	ingress := func(zone, addr string, port uint32) *resource.Resource {
		return &resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone},
			Spec: &v1alpha1.ZoneIngress{Zone: zone, Networking: &v1alpha1.ZoneIngress_Networking{AdvertisedAddress: addr, AdvertisedPort: port}}}
	}
	endpoints := func(zone, service string, n int) *resource.Resource {
		se := &v1alpha1.ServiceEndpoints{Zone: zone, Service: service}
		for range n {
			se.Endpoints = append(se.Endpoints, &v1alpha1.ServiceEndpoints_Endpoint{Address: "10.2.0.1", Port: 9001})
		}
		return &resource.Resource{Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: zone + "." + service}, Spec: se}
	}
	ingresses := []*resource.Resource{ingress("zone-1", "192.0.2.1", 10001), ingress("zone-2", "192.0.2.2", 10002), ingress("zone-3", "", 0)}
	direct := &v1alpha1.Mesh{CrossZone: &v1alpha1.Mesh_CrossZone{Mode: v1alpha1.Mesh_CrossZone_Direct}}
	for _, c := range []struct {
		name      string
		mesh      *v1alpha1.Mesh
		zones     map[string]uint32
		reachable bool
		want      map[string]string // zone → a part of how
	}{
		{"local", &v1alpha1.Mesh{}, map[string]uint32{"zone-1": 1}, true, map[string]string{"zone-1": "local"}},
		{"ingress", &v1alpha1.Mesh{}, map[string]uint32{"zone-2": 2}, true, map[string]string{"zone-2": "ingress 192.0.2.2:10002 (when zone-2 runs its ingress proxy)"}},
		{"ingress without an address", &v1alpha1.Mesh{}, map[string]uint32{"zone-3": 2}, false,
			map[string]string{"zone-3": "crossZone Ingress needs zone-3's ingress, which has no address (start zone-3 with --ingress-address and --ingress-port"}},
		{"direct", direct, map[string]uint32{"zone-2": 2}, true, map[string]string{"zone-2": "direct"}},
		{"direct without endpoints", direct, map[string]uint32{"zone-1": 0, "zone-3": 1}, false,
			map[string]string{"zone-1": "no ready instance", "zone-3": "crossZone Direct needs zone-3's endpoints"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newReachability("zone-1", c.mesh, ingresses, []*resource.Resource{endpoints("zone-2", "backend", 2)})
			v := &ServiceView{Name: "backend", Zones: c.zones}
			r.fill(v)
			if v.Reachable != c.reachable {
				t.Errorf("reachable = %t, want %t (%v)", v.Reachable, c.reachable, v.Reach)
			}
			for zone, want := range c.want {
				if !strings.Contains(v.Reach[zone], want) {
					t.Errorf("reach[%s] = %q, want it to say %q", zone, v.Reach[zone], want)
				}
			}
		})
	}
}
