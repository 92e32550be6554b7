package global

import (
	"context"
	"strings"
	"sync"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

var _ kds.KeyedEndpoint = (*zoneEndpoint)(nil)

// DesiredKeys computes a few resources by wire key, so that a change costs
// each session what changed, not a comparison of everything the zone
// holds: ServiceEndpoints of Direct meshes from the endpoint index, VIP
// records and ZoneIngresses from the cache. Meshes are compared whole.
func (e *zoneEndpoint) DesiredKeys(_ context.Context, t resource.Type, keys []string) (map[string]*v1alpha1.WireResource, error) {
	if e.legacy && (t == resource.ZoneIngressType || t == resource.VIPTableType) {
		return nil, kds.ErrFullCompare // gathered whole (legacy.go)
	}
	switch t {
	case resource.ServiceEndpointsType:
		return e.endpoints.desiredKeys(e.zone, e.directMeshes(), e.disabledZones(), keys)
	case resource.VIPTableType:
		out := make(map[string]*v1alpha1.WireResource, len(keys))
		for _, key := range keys {
			mesh, name, err := kds.SplitWireKey(key)
			if err != nil {
				continue
			}
			r, err := e.cache.Get(resource.Key{Type: t, Mesh: mesh, Name: name})
			if err != nil {
				continue
			}
			w, err := e.wire.ToWire(r, name)
			if err != nil {
				return nil, err
			}
			out[key] = w
		}
		return out, nil
	case resource.ZoneIngressType:
		if e.ingressNames == nil {
			return nil, kds.ErrFullCompare
		}
		disabled := e.disabledZones()
		out := make(map[string]*v1alpha1.WireResource, len(keys))
		for _, key := range keys {
			_, wire, err := kds.SplitWireKey(key)
			if err != nil {
				continue
			}
			r, err := e.cache.Get(resource.Key{Type: t, Name: e.ingressNames.stored(wire)})
			if err != nil {
				continue
			}
			owner := r.Meta.Labels[resource.ZoneLabel]
			if owner == e.zone || owner == "" || disabled[owner] {
				continue
			}
			if name, ok := ingressWireName(r.Meta.Name, owner); !ok || name != wire {
				continue
			}
			w, err := e.wire.ToWire(r, wire)
			if err != nil {
				return nil, err
			}
			out[key] = w
		}
		return out, nil
	}
	return nil, kds.ErrFullCompare
}

// ingressNames maps the wire name of each stored ZoneIngress (its zone's
// name, or the name its zone gave a per-service record) to the name the
// global stores it under ("<name>.<zone>"), which the wire name alone does
// not tell: it is kept from the cache's changes.
type ingressNames struct {
	mu     sync.Mutex
	byWire map[string]string
}

// splitIngressName is the wire name and zone of a stored ZoneIngress name.
func splitIngressName(stored string) (wire, zone string) {
	if i := strings.LastIndexByte(stored, '.'); i >= 0 {
		return stored[:i], stored[i+1:]
	}
	return stored, stored
}

// note records a change of the ZoneIngress at key, forgetting it and its
// memoized wire form when the cache no longer holds it, and returns its
// wire name.
func (n *ingressNames) note(cache *store.Cache, memo *kds.WireMemo, key resource.Key) string {
	wire, _ := splitIngressName(key.Name)
	_, err := cache.Get(key)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		n.byWire[wire] = key.Name
	} else if n.byWire[wire] == key.Name {
		delete(n.byWire, wire)
		memo.ForgetName(key, wire)
	}
	return wire
}

// reset rebuilds the map from what the cache holds.
func (n *ingressNames) reset(cache *store.Cache) {
	fresh := map[string]string{}
	for _, r := range cache.List(resource.ZoneIngressType, "") {
		wire, _ := splitIngressName(r.Meta.Name)
		fresh[wire] = r.Meta.Name
	}
	n.mu.Lock()
	n.byWire = fresh
	n.mu.Unlock()
}

// stored is the stored name of wire (wire itself when unknown: a zone's
// own record is stored under its name).
func (n *ingressNames) stored(wire string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.byWire[wire]; ok {
		return s
	}
	return wire
}
