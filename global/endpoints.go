package global

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// endpointIndex keeps, per (zone, mesh, service), the healthy instances of
// the zones' Dataplanes: what the global relays to the other zones as
// ServiceEndpoints for meshes whose cross-zone mode is Direct. It follows
// the Dataplanes in etcd (store.Follow) and holds only what it relays; it
// writes nothing, so replicas derive the same resources, with the same
// content versions, from the same Dataplanes.
type endpointIndex struct {
	mu     sync.Mutex
	byDP   map[resource.Key][]contribution
	groups map[groupKey]*endpointGroup
	// byWire finds a group by the wire key of its ServiceEndpoints.
	byWire map[string]groupKey
	// changed is told after every change, once the index holds it, with
	// the wire keys of the groups it changed (nil: maybe every group).
	changed func(keys []string)
	// touched gathers the wire keys of the groups one change touches.
	touched map[string]bool
}

type groupKey struct{ zone, mesh, service string }

type contribution struct {
	group groupKey
	ep    *v1alpha1.ServiceEndpoints_Endpoint
}

type endpointGroup struct {
	byDP map[resource.Key][]*v1alpha1.ServiceEndpoints_Endpoint
	wire *v1alpha1.WireResource // nil until built, and after a change
}

func newEndpointIndex(changed func(keys []string)) *endpointIndex {
	return &endpointIndex{byDP: map[resource.Key][]contribution{}, groups: map[groupKey]*endpointGroup{},
		byWire: map[string]groupKey{}, changed: changed, touched: map[string]bool{}}
}

// wireKey is the wire key of a group's ServiceEndpoints.
func (k groupKey) wireKey() string { return kds.WireKey(k.mesh, EndpointsName(k.zone, k.service)) }

// EndpointsName is the name of a zone's ServiceEndpoints for a service: a
// hash, since service names need not be valid resource names.
func EndpointsName(zone, service string) string {
	h := fnv.New64a()
	h.Write([]byte(zone + "\x00" + service))
	return fmt.Sprintf("se-%016x", h.Sum64())
}

// contributions is what a stored Dataplane adds: one endpoint per healthy
// inbound, at its advertised address when it has one.
func contributions(r *resource.Resource) []contribution {
	zone := r.Meta.Labels[resource.ZoneLabel]
	if zone == "" {
		return nil
	}
	n := r.Spec.(*v1alpha1.Dataplane).GetNetworking()
	var out []contribution
	for _, in := range n.GetInbound() {
		if h := in.GetHealth(); h != nil && !h.GetReady() {
			continue
		}
		addr := n.GetAdvertisedAddress()
		if addr == "" {
			addr = cmp.Or(in.GetAddress(), n.GetAddress())
		}
		out = append(out, contribution{
			group: groupKey{zone: zone, mesh: r.Meta.Mesh, service: in.GetTags()[resource.ServiceTag]},
			ep:    &v1alpha1.ServiceEndpoints_Endpoint{Address: addr, Port: in.GetPort()},
		})
	}
	return out
}

func (x *endpointIndex) remove(key resource.Key) {
	for _, c := range x.byDP[key] {
		g := x.groups[c.group]
		if g == nil {
			continue
		}
		delete(g.byDP, key)
		g.wire = nil
		wk := c.group.wireKey()
		x.touched[wk] = true
		if len(g.byDP) == 0 {
			delete(x.groups, c.group)
			delete(x.byWire, wk)
		}
	}
	delete(x.byDP, key)
}

func (x *endpointIndex) add(r *resource.Resource) {
	key := r.Key()
	cs := contributions(r)
	if len(cs) == 0 {
		return
	}
	x.byDP[key] = cs
	for _, c := range cs {
		g := x.groups[c.group]
		wk := c.group.wireKey()
		if g == nil {
			g = &endpointGroup{byDP: map[resource.Key][]*v1alpha1.ServiceEndpoints_Endpoint{}}
			x.groups[c.group] = g
			x.byWire[wk] = c.group
		}
		g.byDP[key] = append(g.byDP[key], c.ep)
		g.wire = nil
		x.touched[wk] = true
	}
}

// reset replaces everything with the Dataplanes in list (store.Follow).
func (x *endpointIndex) reset(list []*resource.Resource) {
	x.mu.Lock()
	x.byDP, x.groups, x.byWire = map[resource.Key][]contribution{}, map[groupKey]*endpointGroup{}, map[string]groupKey{}
	for _, r := range list {
		x.add(r)
	}
	clear(x.touched)
	x.mu.Unlock()
	x.changed(nil)
}

// apply takes one Dataplane change (store.Follow).
func (x *endpointIndex) apply(e store.Event) {
	x.mu.Lock()
	x.remove(e.Resource.Key())
	if e.Kind != store.Deleted {
		x.add(e.Resource)
	}
	keys := make([]string, 0, len(x.touched))
	for k := range x.touched {
		keys = append(keys, k)
	}
	clear(x.touched)
	x.mu.Unlock()
	if len(keys) > 0 {
		x.changed(keys)
	}
}

// desiredKeys is desired restricted to keys: the wire form of those of
// them a zone receives.
func (x *endpointIndex) desiredKeys(zone string, meshes, skip map[string]bool, keys []string) (map[string]*v1alpha1.WireResource, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make(map[string]*v1alpha1.WireResource, len(keys))
	for _, wk := range keys {
		k, ok := x.byWire[wk]
		if !ok || k.zone == zone || !meshes[k.mesh] || skip[k.zone] {
			continue
		}
		w, err := x.groups[k].built(k)
		if err != nil {
			return nil, err
		}
		out[wk] = w
	}
	return out, nil
}

// desired is the wire form of every group a zone receives: other zones'
// groups in the given meshes, except those of skipped zones.
func (x *endpointIndex) desired(zone string, meshes, skip map[string]bool) (map[string]*v1alpha1.WireResource, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]*v1alpha1.WireResource{}
	for k, g := range x.groups {
		if k.zone == zone || !meshes[k.mesh] || skip[k.zone] {
			continue
		}
		w, err := g.built(k)
		if err != nil {
			return nil, err
		}
		out[kds.WireKey(k.mesh, w.GetName())] = w
	}
	return out, nil
}

// built is the group's wire form, built once per change (callers hold
// the index's mu).
func (g *endpointGroup) built(k groupKey) (*v1alpha1.WireResource, error) {
	if g.wire == nil {
		w, err := g.build(k)
		if err != nil {
			return nil, err
		}
		g.wire = w
	}
	return g.wire, nil
}

func (g *endpointGroup) build(k groupKey) (*v1alpha1.WireResource, error) {
	spec := &v1alpha1.ServiceEndpoints{Zone: k.zone, Service: k.service}
	for _, eps := range g.byDP {
		spec.Endpoints = append(spec.Endpoints, eps...)
	}
	slices.SortFunc(spec.Endpoints, func(a, b *v1alpha1.ServiceEndpoints_Endpoint) int {
		return cmp.Or(cmp.Compare(a.GetAddress(), b.GetAddress()), cmp.Compare(a.GetPort(), b.GetPort()))
	})
	name := EndpointsName(k.zone, k.service)
	return kds.ToWire(&resource.Resource{
		Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: k.mesh, Name: name,
			Labels: map[string]string{resource.ZoneLabel: k.zone, resource.OriginLabel: resource.OriginGlobal}},
		Spec: spec,
	}, name)
}
