package zone

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// computeIngress summarises local Dataplanes for other zones: per mesh and
// inbound tag set, the number of instances whose inbound is healthy.
// Gateways have no inbounds and are not offered. The order is stable, so
// the same Dataplanes always give the same ZoneIngress (and version).
func computeIngress(zone string, cfg Ingress, dps []*resource.Resource) *v1alpha1.ZoneIngress {
	type group struct {
		mesh string
		tags map[string]string
		n    uint32
	}
	groups := map[string]*group{}
	for _, r := range dps {
		if !isLocal(r) {
			continue
		}
		for _, in := range r.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound() {
			if h := in.GetHealth(); h != nil && !h.GetReady() {
				continue
			}
			id := r.Meta.Mesh + "\x00" + tagKey(in.GetTags())
			g := groups[id]
			if g == nil {
				g = &group{mesh: r.Meta.Mesh, tags: maps.Clone(in.GetTags())}
				groups[id] = g
			}
			g.n++
		}
	}
	ids := slices.Sorted(maps.Keys(groups))
	zi := &v1alpha1.ZoneIngress{
		Zone: zone,
		Networking: &v1alpha1.ZoneIngress_Networking{
			Address: cfg.Address, Port: uint32(cfg.Port),
			AdvertisedAddress: cfg.AdvertisedAddress, AdvertisedPort: uint32(cfg.AdvertisedPort),
		},
	}
	if zi.Networking.AdvertisedAddress == "" {
		zi.Networking.AdvertisedAddress = cfg.Address
	}
	if zi.Networking.AdvertisedPort == 0 {
		zi.Networking.AdvertisedPort = uint32(cfg.Port)
	}
	for _, id := range ids {
		g := groups[id]
		zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{Mesh: g.mesh, Tags: g.tags, Instances: g.n})
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

// updateIngress recomputes the zone's own ZoneIngress and stores it when it
// changed. It reports whether it wrote.
func updateIngress(ctx context.Context, st store.Store, zone string, cfg Ingress) (bool, error) {
	dps, err := st.List(ctx, resource.DataplaneType, "")
	if err != nil {
		return false, err
	}
	spec := computeIngress(zone, cfg, dps)
	key := resource.Key{Type: resource.ZoneIngressType, Name: zone}
	cur, err := st.Get(ctx, key)
	if err == nil && proto.Equal(cur.Spec, spec) {
		return false, nil
	}
	r := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone,
			Labels: map[string]string{resource.ZoneLabel: zone, resource.OriginLabel: resource.OriginZone}},
		Spec: spec,
	}
	if store.IsNotFound(err) {
		_, err = st.Create(ctx, r)
	} else if err == nil {
		r.Meta.Version = cur.Meta.Version
		_, err = st.Update(ctx, r)
	}
	return err == nil, err
}
