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

// updateIngress stores the zone's own ZoneIngress from the index when it
// changed. It reports whether it wrote.
func updateIngress(ctx context.Context, st store.Store, zone string, cfg Ingress, idx *localIndex) (bool, error) {
	spec := ingressSpec(zone, cfg, idx.available())
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
