package zone

import (
	"fmt"
	"net"
	"strconv"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// reachability says, for the services GET /meshes/{mesh}/services lists,
// whether this zone's proxies can reach each zone's instances: their own
// zone's always; another zone's by the mesh's cross-zone mode, Direct
// through that zone's endpoints the global sent, Ingress through that
// zone's ingress at its advertised address. The same rules decide what the
// zone's xDS configuration holds (zone/xds model).
type reachability struct {
	zone string
	mode v1alpha1.Mesh_CrossZone_Mode
	// endpoints counts, by service and zone, the endpoints of other zones
	// this zone holds (Direct).
	endpoints map[string]map[string]int
	// ingresses are the ZoneIngresses by zone (Ingress).
	ingresses map[string]*v1alpha1.ZoneIngress
}

// endpoints are the mesh's ServiceEndpoints.
func newReachability(zone string, m *v1alpha1.Mesh, ingresses, endpoints []*resource.Resource) *reachability {
	r := &reachability{zone: zone, mode: m.GetCrossZone().GetMode(),
		endpoints: map[string]map[string]int{}, ingresses: map[string]*v1alpha1.ZoneIngress{}}
	for _, zi := range ingresses {
		spec := zi.Spec.(*v1alpha1.ZoneIngress)
		r.ingresses[spec.GetZone()] = spec
	}
	for _, e := range endpoints {
		se := e.Spec.(*v1alpha1.ServiceEndpoints)
		byZone := r.endpoints[se.GetService()]
		if byZone == nil {
			byZone = map[string]int{}
			r.endpoints[se.GetService()] = byZone
		}
		byZone[se.GetZone()] += len(se.GetEndpoints())
	}
	return r
}

// fill sets v.Reachable and v.Reach from the zones v runs in.
func (r *reachability) fill(v *ServiceView) {
	v.Reach = map[string]string{}
	for zone, n := range v.Zones {
		how, ok := r.route(v.Name, zone, n)
		v.Reach[zone] = how
		v.Reachable = v.Reachable || ok
	}
}

// route says how this zone's proxies reach service's n instances in zone,
// or why they cannot.
func (r *reachability) route(service, zone string, n uint32) (string, bool) {
	switch {
	case n == 0:
		return "no ready instance", false
	case zone == r.zone:
		return "local", true
	case r.mode == v1alpha1.Mesh_CrossZone_Direct:
		if r.endpoints[service][zone] == 0 {
			return fmt.Sprintf("crossZone Direct needs %s's endpoints, which the global has not sent (yet)", zone), false
		}
		return "direct", true
	}
	in := r.ingresses[zone].GetNetworking()
	if in.GetAdvertisedAddress() == "" || in.GetAdvertisedPort() == 0 {
		return fmt.Sprintf("crossZone Ingress needs %s's ingress, which has no address (start %s with --ingress-address and --ingress-port, or set the mesh's crossZone mode to Direct)", zone, zone), false
	}
	// Whether an ingress proxy runs there is known to that zone only.
	return fmt.Sprintf("ingress %s (when %s runs its ingress proxy)", net.JoinHostPort(in.GetAdvertisedAddress(), strconv.FormatUint(uint64(in.GetAdvertisedPort()), 10)), zone), true
}
