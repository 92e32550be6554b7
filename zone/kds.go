package zone

import (
	"context"
	"fmt"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// globalEndpoint is the zone's data for its session with the global: it
// sends local Dataplanes and its own ZoneIngress, and keeps what the global
// sends (Meshes, other zones' ZoneIngresses) in the local store, so it
// survives restarts and outages.
type globalEndpoint struct {
	zone  string
	store store.Store
	cache *store.Cache // holds the zone's own ZoneIngress
	wire  *kds.WireMemo
	local *localIndex
	guard *globalGuard
}

var _ kds.Endpoint = (*globalEndpoint)(nil)

func isLocal(r *resource.Resource) bool {
	return r.Meta.Labels[resource.OriginLabel] == resource.OriginZone
}

func (e *globalEndpoint) Desired(ctx context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	switch t {
	case resource.DataplaneType:
		return e.local.desired(), nil
	case resource.ZoneIngressType:
		// The zone's service summary: its own record and one per service.
		out := map[string]*v1alpha1.WireResource{}
		for _, r := range e.cache.List(t, "") {
			if !isOwn(r, e.zone) {
				continue
			}
			w, err := e.wire.ToWire(r, r.Meta.Name)
			if err != nil {
				return nil, err
			}
			out[kds.WireKey("", r.Meta.Name)] = w
		}
		e.wire.Forget(t, func(k resource.Key) bool {
			_, err := e.cache.Get(k)
			return err == nil
		})
		return out, nil
	}
	return nil, fmt.Errorf("a zone does not send %s", t)
}

var _ kds.KeyedEndpoint = (*globalEndpoint)(nil)

// DesiredKeys reads the zone's Dataplanes of keys from the local index,
// and its ZoneIngress records from the cache.
func (e *globalEndpoint) DesiredKeys(_ context.Context, t resource.Type, keys []string) (map[string]*v1alpha1.WireResource, error) {
	switch t {
	case resource.DataplaneType:
		return e.local.desiredKeys(keys), nil
	case resource.ZoneIngressType:
		out := make(map[string]*v1alpha1.WireResource, len(keys))
		for _, key := range keys {
			_, name, err := kds.SplitWireKey(key)
			if err != nil {
				continue
			}
			r, err := e.cache.Get(resource.Key{Type: t, Name: name})
			if err != nil || !isOwn(r, e.zone) {
				continue
			}
			w, err := e.wire.ToWire(r, name)
			if err != nil {
				return nil, err
			}
			out[key] = w
		}
		return out, nil
	}
	return nil, kds.ErrFullCompare
}

func (e *globalEndpoint) Held(ctx context.Context, t resource.Type) (map[string]string, error) {
	items, err := e.store.List(ctx, t, "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range items {
		if isLocal(r) {
			continue
		}
		v, err := kds.VersionOf(r)
		if err != nil {
			return nil, err
		}
		out[kds.WireKey(r.Meta.Mesh, r.Meta.Name)] = v
	}
	return out, nil
}

func (e *globalEndpoint) Apply(ctx context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) (map[string]string, error) {
	refused := map[string]string{}
	var ops []store.Op
	for _, w := range upserts {
		key := kds.WireKey(w.GetMesh(), w.GetName())
		if why := e.guard.refusal(t, false); why != "" {
			refused[key] = why
			continue
		}
		r, err := kds.FromWire(t, w)
		if err != nil {
			refused[key] = err.Error()
			continue
		}
		if err := resource.Validate(r); err != nil {
			refused[key] = err.Error()
			continue
		}
		switch t {
		case resource.ZoneIngressType:
			// Validate held the name to the zone's own record or the
			// record of its one service.
			zi := r.Spec.(*v1alpha1.ZoneIngress)
			if zi.GetZone() == e.zone || r.Meta.Name == e.zone {
				refused[key] = fmt.Sprintf("ZoneIngress %q for zone %q: this zone writes its own service summary, the global sends only other zones'", r.Meta.Name, zi.GetZone())
				continue
			}
			r.Meta.Labels[resource.ZoneLabel] = zi.GetZone()
		case resource.ServiceEndpointsType:
			se := r.Spec.(*v1alpha1.ServiceEndpoints)
			if se.GetZone() == e.zone {
				refused[key] = fmt.Sprintf("ServiceEndpoints of zone %q: a zone knows its own instances", se.GetZone())
				continue
			}
			r.Meta.Labels[resource.ZoneLabel] = se.GetZone()
		}
		r.Meta.Labels[resource.OriginLabel] = resource.OriginGlobal
		ops = append(ops, store.Op{Put: r})
	}
	for _, key := range removed {
		if why := e.guard.refusal(t, true); why != "" {
			refused[key] = why
			continue
		}
		mesh, name, err := kds.SplitWireKey(key)
		if err != nil {
			refused[key] = err.Error()
			continue
		}
		k := resource.Key{Type: t, Mesh: mesh, Name: name}
		if cur, err := e.store.Get(ctx, k); err == nil && isLocal(cur) {
			refused[key] = "the global may not remove this zone's own resource"
			continue
		}
		ops = append(ops, store.Op{Delete: k})
	}
	if err := e.store.Apply(ctx, ops); err != nil {
		return nil, err
	}
	return refused, nil
}
