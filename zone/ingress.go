package zone

import (
	"context"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// ingressSpec is one of the zone's ZoneIngresses: its address from config
// and the services it lists (none in the zone's own record, one in a
// service's record). Gateways have no inbounds and are not offered.
func ingressSpec(zone string, cfg Ingress, available []*v1alpha1.ZoneIngress_AvailableService) *v1alpha1.ZoneIngress {
	zi := &v1alpha1.ZoneIngress{
		Zone: zone,
		Networking: &v1alpha1.ZoneIngress_Networking{
			Address: cfg.Address, Port: uint32(cfg.Port),
			AdvertisedAddress: cfg.AdvertisedAddress, AdvertisedPort: uint32(cfg.AdvertisedPort),
		},
		AvailableServices: available,
	}
	if zi.Networking.AdvertisedAddress == "" {
		zi.Networking.AdvertisedAddress = cfg.Address
	}
	if zi.Networking.AdvertisedPort == 0 {
		zi.Networking.AdvertisedPort = uint32(cfg.Port)
	}
	return zi
}

// ingressWriter stores the zone's service summary (internal/resource
// records.go): its own ZoneIngress, named after the zone, with the
// ingress address and no services, and one ZoneIngress per (mesh, tag
// set, port) with healthy local instances, named ZoneServiceName, holding
// that count. It remembers what it wrote last, so a change reads nothing
// back and writes only the records that differ, in one store Apply; it is
// the only writer of the zone's records. One goroutine at a time.
type ingressWriter struct {
	store store.Store
	zone  string
	cfg   Ingress
	// last is what the store holds of the zone's records, by name; nil:
	// read them from the store first.
	last map[string]*resource.Resource
}

// update writes the records that the groups changed in idx since the last
// update (all of them after a reset or a failed write) make differ from
// the stored ones. It reports whether it wrote.
func (w *ingressWriter) update(ctx context.Context, idx *localIndex) (bool, error) {
	changed, full := idx.take()
	if w.last == nil {
		last, err := w.stored(ctx)
		if err != nil {
			return false, err
		}
		w.last = last
		if !full {
			changed, full = idx.all(), true
		}
	}
	var puts, deletes []store.Op
	want := make(map[string]bool, len(changed))
	for _, g := range changed {
		name := resource.ZoneServiceName(w.zone, g.mesh, g.tags, g.port)
		if g.n == 0 {
			if w.last[name] != nil {
				deletes = append(deletes, store.Op{Delete: resource.Key{Type: resource.ZoneIngressType, Name: name}})
			}
			continue
		}
		want[name] = true
		spec := ingressSpec(w.zone, w.cfg, []*v1alpha1.ZoneIngress_AvailableService{{Mesh: g.mesh, Tags: g.tags, Port: g.port, Instances: g.n}})
		if r := w.record(name, spec); r != nil {
			puts = append(puts, store.Op{Put: r})
		}
	}
	if full {
		for _, name := range slices.Sorted(maps.Keys(w.last)) {
			if name != w.zone && !want[name] {
				deletes = append(deletes, store.Op{Delete: resource.Key{Type: resource.ZoneIngressType, Name: name}})
			}
		}
	}
	// The zone's own record last: an older one listing every service (the
	// format before per-service records) loses its list only once the
	// records that replace it are written.
	if r := w.record(w.zone, ingressSpec(w.zone, w.cfg, nil)); r != nil {
		puts = append(puts, store.Op{Put: r})
	}
	ops := append(puts, deletes...)
	if len(ops) == 0 {
		return false, nil
	}
	if err := w.store.Apply(ctx, ops); err != nil {
		w.last = nil // some may be written: read them again next time
		return false, err
	}
	for _, op := range ops {
		if op.Put != nil {
			w.last[op.Put.Meta.Name] = op.Put
		} else {
			delete(w.last, op.Delete.Name)
		}
	}
	return true, nil
}

// record returns the zone's record name with spec to write, or nil when
// the store holds it already.
func (w *ingressWriter) record(name string, spec *v1alpha1.ZoneIngress) *resource.Resource {
	if cur := w.last[name]; cur != nil && isOwn(cur, w.zone) && proto.Equal(cur.Spec, spec) {
		return nil
	}
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: name,
			Labels: map[string]string{resource.ZoneLabel: w.zone, resource.OriginLabel: resource.OriginZone}},
		Spec: spec,
	}
}

// stored reads the zone's records from the store, by name.
func (w *ingressWriter) stored(ctx context.Context) (map[string]*resource.Resource, error) {
	items, err := w.store.List(ctx, resource.ZoneIngressType, "")
	if err != nil {
		return nil, err
	}
	out := map[string]*resource.Resource{}
	for _, r := range items {
		if isOwn(r, w.zone) {
			out[r.Meta.Name] = r
		}
	}
	return out, nil
}

// isOwn reports whether r is one of zone's own records of what it offers,
// written by zone's ingressWriter (not sent by the global).
func isOwn(r *resource.Resource, zone string) bool {
	return isLocal(r) && r.Meta.Labels[resource.ZoneLabel] == zone
}
