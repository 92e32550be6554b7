package zone

import (
	"context"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// ingressSpec is the zone's ZoneIngress: its address from config and, per
// mesh and inbound tag set, the number of local instances whose inbound is
// healthy. Gateways have no inbounds and are not offered.
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

func tagKey(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(tags[k])
		b.WriteByte(0)
	}
	return b.String()
}

// ingressWriter stores the zone's own ZoneIngress when it changes. It
// remembers what it wrote last, so a recompute reads nothing back; only
// the zone writes its ZoneIngress, and when something else did anyway the
// write conflicts and is retried from a fresh read. One goroutine at a time.
type ingressWriter struct {
	store store.Store
	zone  string
	cfg   Ingress
	last  *resource.Resource // nil: read it from the store first
}

// update stores the ZoneIngress computed from the index when it differs
// from the stored one. It reports whether it wrote.
func (w *ingressWriter) update(ctx context.Context, idx *localIndex) (bool, error) {
	spec := ingressSpec(w.zone, w.cfg, idx.available())
	for attempt := 0; ; attempt++ {
		if w.last == nil {
			cur, err := w.store.Get(ctx, resource.Key{Type: resource.ZoneIngressType, Name: w.zone})
			if err != nil && !store.IsNotFound(err) {
				return false, err
			}
			w.last = cur
		}
		if w.last != nil && proto.Equal(w.last.Spec, spec) {
			return false, nil
		}
		r := &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: w.zone,
				Labels: map[string]string{resource.ZoneLabel: w.zone, resource.OriginLabel: resource.OriginZone}},
			Spec: spec,
		}
		var out *resource.Resource
		var err error
		if w.last == nil {
			out, err = w.store.Create(ctx, r)
		} else {
			r.Meta.Version = w.last.Meta.Version
			out, err = w.store.Update(ctx, r)
		}
		if err == nil {
			w.last = out
			return true, nil
		}
		w.last = nil
		if attempt > 0 || !(store.IsConflict(err) || store.IsNotFound(err) || store.IsAlreadyExists(err)) {
			return false, err
		}
	}
}
