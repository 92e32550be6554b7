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
	// changed is told after every change, once the index holds it.
	changed func()
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

func newEndpointIndex(changed func()) *endpointIndex {
	return &endpointIndex{byDP: map[resource.Key][]contribution{}, groups: map[groupKey]*endpointGroup{}, changed: changed}
}

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
		if len(g.byDP) == 0 {
			delete(x.groups, c.group)
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
		if g == nil {
			g = &endpointGroup{byDP: map[resource.Key][]*v1alpha1.ServiceEndpoints_Endpoint{}}
			x.groups[c.group] = g
		}
		g.byDP[key] = append(g.byDP[key], c.ep)
		g.wire = nil
	}
}

// reset replaces everything with the Dataplanes in list (store.Follow).
func (x *endpointIndex) reset(list []*resource.Resource) {
	x.mu.Lock()
	x.byDP, x.groups = map[resource.Key][]contribution{}, map[groupKey]*endpointGroup{}
	for _, r := range list {
		x.add(r)
	}
	x.mu.Unlock()
	x.changed()
}

// apply takes one Dataplane change (store.Follow).
func (x *endpointIndex) apply(e store.Event) {
	x.mu.Lock()
	x.remove(e.Resource.Key())
	if e.Kind != store.Deleted {
		x.add(e.Resource)
	}
	x.mu.Unlock()
	x.changed()
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
		if g.wire == nil {
			w, err := g.build(k)
			if err != nil {
				return nil, err
			}
			g.wire = w
		}
		out[kds.WireKey(k.mesh, g.wire.GetName())] = g.wire
	}
	return out, nil
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
