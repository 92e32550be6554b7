package zone

import (
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/naming"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// localIndex keeps what the zone sends of its own Dataplanes, updated from
// store events so that no change costs work proportional to the number of
// Dataplanes: their wire form (encoded and hashed once per change) and the
// instance counts that make the zone's per-service ZoneIngresses, with the
// groups whose count moved since the writer last took them (take), so
// that a change costs work proportional to what it changed.
type localIndex struct {
	mu     sync.RWMutex
	wire   map[string]*v1alpha1.WireResource // by wire key
	groups map[string]*ingressGroup          // by mesh + tag set + port
	member map[string][]string               // wire key → groups it counts in
	// dirty are the groups whose count changed since take, by id; a group
	// counted down to nothing is kept here (n == 0) so its record goes.
	dirty map[string]*ingressGroup
	// full is set by reset: every group is to be taken.
	full bool
}

type ingressGroup struct {
	mesh string
	tags map[string]string
	port uint32
	n    uint32
}

func newLocalIndex() *localIndex {
	return &localIndex{wire: map[string]*v1alpha1.WireResource{}, groups: map[string]*ingressGroup{},
		member: map[string][]string{}, dirty: map[string]*ingressGroup{}}
}

// reset replaces the index with dps.
func (x *localIndex) reset(dps []*resource.Resource) error {
	fresh := newLocalIndex()
	for _, r := range dps {
		if err := fresh.put(r); err != nil {
			return err
		}
	}
	x.mu.Lock()
	x.wire, x.groups, x.member = fresh.wire, fresh.groups, fresh.member
	x.dirty, x.full = map[string]*ingressGroup{}, true
	x.mu.Unlock()
	return nil
}

// apply updates the index with one store event. It reports whether the
// instance counts changed, that is whether the ZoneIngress must be
// recomputed: most changes (an address, a port, a label) leave them alone.
func (x *localIndex) apply(e store.Event) (countsChanged bool, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := kds.WireKey(e.Resource.Meta.Mesh, e.Resource.Meta.Name)
	before := x.member[key]
	if e.Kind == store.Deleted {
		x.remove(key)
	} else {
		err = x.put(e.Resource)
	}
	return !slices.Equal(before, x.member[key]), err
}

// put indexes r (callers hold mu, or own x).
func (x *localIndex) put(r *resource.Resource) error {
	key := kds.WireKey(r.Meta.Mesh, r.Meta.Name)
	x.remove(key)
	if !isLocal(r) {
		return nil
	}
	w, err := kds.ToWire(r, r.Meta.Name)
	if err != nil {
		return err
	}
	x.wire[key] = w
	var ids []string
	for _, in := range r.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound() {
		if h := in.GetHealth(); h != nil && !h.GetReady() {
			continue
		}
		// Other zones reach the service at its port (naming.ServicePort),
		// whatever port this zone's instances listen on.
		port := naming.ServicePort(in.GetTags()[resource.ServiceTag], in.GetPort())
		id := r.Meta.Mesh + "\x00" + resource.TagKey(in.GetTags()) + "\x00" + strconv.FormatUint(uint64(port), 10)
		g := x.groups[id]
		if g == nil {
			g = &ingressGroup{mesh: r.Meta.Mesh, tags: maps.Clone(in.GetTags()), port: port}
			x.groups[id] = g
		}
		g.n++
		x.dirty[id] = g
		ids = append(ids, id)
	}
	x.member[key] = ids
	return nil
}

func (x *localIndex) remove(key string) {
	for _, id := range x.member[key] {
		if g := x.groups[id]; g != nil {
			if g.n--; g.n == 0 {
				delete(x.groups, id)
			}
			x.dirty[id] = g
		}
	}
	delete(x.member, key)
	delete(x.wire, key)
}

// desired is a copy of the wire form of every local Dataplane.
func (x *localIndex) desired() map[string]*v1alpha1.WireResource {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return maps.Clone(x.wire)
}

// desiredKeys is the wire form of the local Dataplanes of keys that exist.
func (x *localIndex) desiredKeys(keys []string) map[string]*v1alpha1.WireResource {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[string]*v1alpha1.WireResource, len(keys))
	for _, k := range keys {
		if w, ok := x.wire[k]; ok {
			out[k] = w
		}
	}
	return out
}

// available is the ZoneIngress's availableServices, one per (mesh, tag
// set, port), in a stable order.
func (x *localIndex) available() []*v1alpha1.ZoneIngress_AvailableService {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*v1alpha1.ZoneIngress_AvailableService, 0, len(x.groups))
	for _, id := range slices.Sorted(maps.Keys(x.groups)) {
		g := x.groups[id]
		out = append(out, &v1alpha1.ZoneIngress_AvailableService{Mesh: g.mesh, Tags: g.tags, Port: g.port, Instances: g.n})
	}
	return out
}

// groupCount is a (mesh, tag set, port) the zone offers, with its count
// when taken: 0 when it is offered no more.
type groupCount struct {
	mesh string
	tags map[string]string
	port uint32
	n    uint32
}

// take returns the groups whose count changed since the last take and
// forgets them; after a reset (full) it returns every group instead.
func (x *localIndex) take() (changed []groupCount, full bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	from := x.dirty
	if x.full {
		from = x.groups
	}
	changed = make([]groupCount, 0, len(from))
	for _, g := range from {
		changed = append(changed, groupCount{mesh: g.mesh, tags: g.tags, port: g.port, n: g.n})
	}
	full = x.full
	x.dirty, x.full = map[string]*ingressGroup{}, false
	return changed, full
}

// all returns every group offered now (as take after a reset would),
// leaving what take returns next alone.
func (x *localIndex) all() []groupCount {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]groupCount, 0, len(x.groups))
	for _, g := range x.groups {
		out = append(out, groupCount{mesh: g.mesh, tags: g.tags, port: g.port, n: g.n})
	}
	return out
}
