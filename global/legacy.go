package global

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/vip"
	"github.com/atoll-mesh/atoll/kds"
)

// legacyDesired is what a zone of a version before per-service records
// takes (its Hello lacks kds.FeaturePerServiceRecords): each other zone's
// service summary as one ZoneIngress named after the zone, and each mesh's
// VIPs as one VIPTable named "vips", gathered from the records. Such a zone
// would refuse the records themselves, and lose sight of every upgraded
// zone's services until upgraded too; this keeps a rolling upgrade of the
// zones (after the global) without that gap. These values grow with the
// services, as they did before; only older zones are sent them.
func (e *zoneEndpoint) legacyDesired(t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	out := map[string]*v1alpha1.WireResource{}
	if t == resource.VIPTableType {
		byMesh := map[string][]*resource.Resource{}
		for _, r := range e.cache.List(resource.VIPTableType, "") {
			byMesh[r.Meta.Mesh] = append(byMesh[r.Meta.Mesh], r)
		}
		for mesh, records := range byMesh {
			w, err := kds.ToWire(&resource.Resource{
				Meta: resource.Meta{Type: resource.VIPTableType, Mesh: mesh, Name: resource.VIPTableName,
					Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
				Spec: &v1alpha1.VIPTable{Entries: vip.Entries(records)},
			}, resource.VIPTableName)
			if err != nil {
				return nil, err
			}
			out[kds.WireKey(mesh, resource.VIPTableName)] = w
		}
		return out, nil
	}
	disabled := e.disabledZones()
	type summary struct {
		net      *v1alpha1.ZoneIngress_Networking
		services map[string]*v1alpha1.ZoneIngress_AvailableService
		// fromRecords marks services a per-service record gave: they win
		// over the same service in a legacy list of the same zone.
		fromRecords map[string]bool
	}
	zones := map[string]*summary{}
	for _, r := range e.cache.List(resource.ZoneIngressType, "") {
		owner := r.Meta.Labels[resource.ZoneLabel]
		if owner == e.zone || owner == "" || disabled[owner] {
			continue
		}
		s := zones[owner]
		if s == nil {
			s = &summary{services: map[string]*v1alpha1.ZoneIngress_AvailableService{}, fromRecords: map[string]bool{}}
			zones[owner] = s
		}
		zi := r.Spec.(*v1alpha1.ZoneIngress)
		own := r.Meta.Name == owner
		if own || s.net == nil {
			s.net = zi.GetNetworking()
		}
		for _, a := range zi.GetAvailableServices() {
			id := a.GetMesh() + "\x00" + resource.TagKey(a.GetTags()) + "\x00" + strconv.FormatUint(uint64(a.GetPort()), 10)
			if own && s.fromRecords[id] {
				continue
			}
			s.services[id] = a
			s.fromRecords[id] = !own
		}
	}
	for zone, s := range zones {
		zi := &v1alpha1.ZoneIngress{Zone: zone, Networking: s.net}
		for _, a := range s.services {
			zi.AvailableServices = append(zi.AvailableServices, a)
		}
		slices.SortFunc(zi.AvailableServices, func(a, b *v1alpha1.ZoneIngress_AvailableService) int {
			return cmp.Or(cmp.Compare(a.GetMesh(), b.GetMesh()), cmp.Compare(resource.TagKey(a.GetTags()), resource.TagKey(b.GetTags())), cmp.Compare(a.GetPort(), b.GetPort()))
		})
		w, err := kds.ToWire(&resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone,
				Labels: map[string]string{resource.ZoneLabel: zone, resource.OriginLabel: resource.OriginZone}},
			Spec: zi,
		}, zone)
		if err != nil {
			return nil, err
		}
		out[kds.WireKey("", zone)] = w
	}
	return out, nil
}
