package global

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// zoneEndpoint is the global's data for one zone's session. The zone's
// identity comes from the session, never from what it sends. Its session
// calls it from one goroutine only.
type zoneEndpoint struct {
	zone  string
	store store.Store
	cache *store.Cache // meshes, zones, insights, ZoneIngresses, VIP tables
	wire  *kds.WireMemo
	// endpoints holds every zone's instances, for Direct cross-zone meshes.
	endpoints *endpointIndex
	// ingressNames finds a relayed ZoneIngress by its wire name (nil:
	// ZoneIngresses are compared whole).
	ingressNames *ingressNames
	// legacy: the zone predates per-service records (its Hello lacks
	// kds.FeaturePerServiceRecords); it is sent one ZoneIngress per zone
	// and one VIPTable per mesh, gathered from the records (legacy.go).
	legacy  bool
	refused *prometheus.CounterVec
	// withdrawAfter, when positive, hides zones offline for longer.
	withdrawAfter time.Duration
	// maxResources bounds what the zone keeps at the global, over every
	// type it sends (0: DefaultMaxResourcesPerZone).
	maxResources int
	// held are the wire keys the zone keeps at the global, per type: read
	// from the store by Held (or the first Apply), then kept in step with
	// what Apply writes, so the cap needs no listing per push.
	held map[resource.Type]map[string]bool
	// fence, taken before the session's first read, keeps the zone's
	// earlier sessions (on this replica or another) from writing once this
	// one has read what the zone holds: a write of theirs still in flight
	// at etcd would otherwise land unseen, and stay (see store.Fencer).
	// Nil when the store is not shared (no late writes).
	fence store.Fence
}

// DefaultMaxResourcesPerZone is the cap when none is configured.
const DefaultMaxResourcesPerZone = 50000

var _ kds.Endpoint = (*zoneEndpoint)(nil)

// StoredName is the global's name for a zone's resource: "<name>.<zone>",
// which cannot collide across zones since names hold no dots.
func StoredName(name, zone string) string { return name + "." + zone }

func (e *zoneEndpoint) Desired(ctx context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	if e.legacy && (t == resource.ZoneIngressType || t == resource.VIPTableType) {
		return e.legacyDesired(t)
	}
	out := map[string]*v1alpha1.WireResource{}
	switch t {
	case resource.MeshType, resource.VIPTableType:
		for _, r := range e.cache.List(t, "") {
			w, err := e.wire.ToWire(r, r.Meta.Name)
			if err != nil {
				return nil, err
			}
			out[kds.WireKey(r.Meta.Mesh, r.Meta.Name)] = w
		}
	case resource.ZoneIngressType:
		// Every record of every other zone's service summary, by the name
		// its zone gave it (ingressWireName).
		disabled := e.disabledZones()
		for _, zi := range e.cache.List(resource.ZoneIngressType, "") {
			owner := zi.Meta.Labels[resource.ZoneLabel]
			if owner == e.zone || owner == "" || disabled[owner] {
				continue
			}
			name, ok := ingressWireName(zi.Meta.Name, owner)
			if !ok {
				continue
			}
			w, err := e.wire.ToWire(zi, name)
			if err != nil {
				return nil, err
			}
			out[kds.WireKey("", name)] = w
		}
	case resource.ServiceEndpointsType:
		return e.endpoints.desired(e.zone, e.directMeshes(), e.disabledZones())
	default:
		return nil, fmt.Errorf("the global does not send %s", t)
	}
	e.wire.Forget(t, func(k resource.Key) bool {
		_, err := e.cache.Get(k)
		return err == nil
	})
	return out, nil
}

// directMeshes are the meshes whose cross-zone mode is Direct.
func (e *zoneEndpoint) directMeshes() map[string]bool {
	direct := map[string]bool{}
	for _, m := range e.cache.List(resource.MeshType, "") {
		if m.Spec.(*v1alpha1.Mesh).GetCrossZone().GetMode() == v1alpha1.Mesh_CrossZone_Direct {
			direct[m.Meta.Name] = true
		}
	}
	return direct
}

func (e *zoneEndpoint) disabledZones() map[string]bool {
	out := map[string]bool{}
	for _, z := range e.cache.List(resource.ZoneType, "") {
		if en := z.Spec.(*v1alpha1.Zone).Enabled; en != nil && !*en {
			out[z.Meta.Name] = true
		}
	}
	if e.withdrawAfter > 0 {
		for _, in := range e.cache.List(resource.ZoneInsightType, "") {
			if offlineFor(in.Spec.(*v1alpha1.ZoneInsight)) > e.withdrawAfter {
				out[in.Meta.Name] = true
			}
		}
	}
	return out
}

// fenced takes the session's fence once, before anything of the zone is
// read or written.
func (e *zoneEndpoint) fenced(ctx context.Context) error {
	f, ok := e.store.(store.Fencer)
	if !ok || e.fence != nil {
		return nil
	}
	fence, err := f.Fence(ctx, e.zone)
	if err != nil {
		return err
	}
	e.fence = fence
	return nil
}

func (e *zoneEndpoint) Held(ctx context.Context, t resource.Type) (map[string]string, error) {
	if err := e.fenced(ctx); err != nil {
		return nil, err
	}
	items, err := e.store.List(ctx, t, "")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range items {
		if r.Meta.Labels[resource.ZoneLabel] != e.zone {
			continue
		}
		name, ok := strings.CutSuffix(r.Meta.Name, "."+e.zone)
		if t == resource.ZoneIngressType {
			name, ok = ingressWireName(r.Meta.Name, e.zone)
		}
		if !ok {
			continue
		}
		v, err := kds.VersionOf(r)
		if err != nil {
			return nil, err
		}
		out[kds.WireKey(r.Meta.Mesh, name)] = v
	}
	keys := make(map[string]bool, len(out))
	for k := range out {
		keys[k] = true
	}
	if e.held == nil {
		e.held = map[resource.Type]map[string]bool{}
	}
	e.held[t] = keys
	return out, nil
}

// stored returns how many resources the zone keeps at the global, reading
// what it keeps of t first if no Held did yet.
func (e *zoneEndpoint) stored(ctx context.Context, t resource.Type) (int, error) {
	if _, ok := e.held[t]; !ok {
		if _, err := e.Held(ctx, t); err != nil {
			return 0, err
		}
	}
	n := 0
	for _, keys := range e.held {
		n += len(keys)
	}
	return n, nil
}

func (e *zoneEndpoint) Apply(ctx context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) (map[string]string, error) {
	refused := map[string]string{}
	refuse := func(key, reason, why string) {
		refused[key] = why
		e.refused.WithLabelValues(e.zone, reason).Inc()
	}
	if err := e.fenced(ctx); err != nil {
		return nil, err
	}
	limit := e.maxResources
	if limit <= 0 {
		limit = DefaultMaxResourcesPerZone
	}
	total, err := e.stored(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("counting zone %q's resources: %w", e.zone, err)
	}
	held := e.held[t]
	meshes := map[string]bool{}
	for _, m := range e.cache.List(resource.MeshType, "") {
		meshes[m.Meta.Name] = true
	}
	// Removals are counted first: a push that removes some and adds as
	// many stays within the cap.
	type removal struct {
		wireKey string
		key     resource.Key
	}
	var removals []removal
	for _, key := range removed {
		mesh, name, err := kds.SplitWireKey(key)
		if err != nil {
			refuse(key, "invalid", err.Error())
			continue
		}
		stored := StoredName(name, e.zone)
		if t == resource.ZoneIngressType {
			stored = ingressStoredName(name, e.zone)
		}
		removals = append(removals, removal{key, resource.Key{Type: t, Mesh: mesh, Name: stored}})
		if held[key] {
			total--
		}
	}
	var ops []store.Op
	// wireKeys maps each put back to the key the zone knows it by.
	wireKeys := map[resource.Key]string{}
	added := map[string]bool{}
	for _, w := range upserts {
		key := kds.WireKey(w.GetMesh(), w.GetName())
		r, err := kds.FromWire(t, w)
		if err != nil {
			refuse(key, "invalid", err.Error())
			continue
		}
		if claimed, ok := r.Meta.Labels[resource.ZoneLabel]; ok && claimed != e.zone {
			refuse(key, "spoof", fmt.Sprintf("claims zone %q but the connection is zone %q: a zone writes only as itself", claimed, e.zone))
			continue
		}
		if err := resource.Validate(r); err != nil {
			refuse(key, "invalid", err.Error())
			continue
		}
		if t == resource.ZoneIngressType {
			// Validate held the name to the zone's own record or its
			// record of the one service it lists.
			zi := r.Spec.(*v1alpha1.ZoneIngress)
			if zi.GetZone() != e.zone {
				refuse(key, "spoof", fmt.Sprintf("a ZoneIngress named %q for zone %q: zone %q may only send its own service summary", r.Meta.Name, zi.GetZone(), e.zone))
				continue
			}
			if m := unknownMesh(zi, meshes); m != "" {
				// A mesh cannot be deleted while a zone has Dataplanes in
				// it: offering services in one that does not exist is a
				// zone's bug or a lie. The last good ZoneIngress stays.
				refuse(key, "invalid", fmt.Sprintf("the ZoneIngress offers services in mesh %q, which does not exist on the global", m))
				continue
			}
		}
		if r.Meta.Mesh != "" && !meshes[r.Meta.Mesh] {
			refuse(key, "invalid", fmt.Sprintf("mesh %q does not exist on the global", r.Meta.Mesh))
			continue
		}
		if !held[key] && !added[key] {
			if total >= limit {
				refuse(key, "limit", fmt.Sprintf("zone %q already keeps %d resources at the global, its limit: remove some, or raise the global's --max-resources-per-zone (kds.maxResourcesPerZone)", e.zone, limit))
				continue
			}
			total++
			added[key] = true
		}
		if t == resource.ZoneIngressType {
			r.Meta.Name = ingressStoredName(r.Meta.Name, e.zone)
		} else {
			r.Meta.Name = StoredName(r.Meta.Name, e.zone)
		}
		r.Meta.Labels[resource.ZoneLabel] = e.zone
		r.Meta.Labels[resource.OriginLabel] = resource.OriginZone
		ops = append(ops, store.Op{Put: r})
		wireKeys[r.Key()] = key
	}
	for _, rm := range removals {
		ops = append(ops, store.Op{Delete: rm.key})
	}
	ops, err = e.apply(ctx, ops, wireKeys, refuse)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.Put != nil {
			held[wireKeys[op.Put.Key()]] = true
		}
	}
	for _, rm := range removals {
		delete(held, rm.wireKey)
	}
	return refused, nil
}

// apply writes ops. Resources too large to store are refused one by one
// and the rest written: one such resource never blocks the others, and the
// zone, told which, does not send it again until it changes. It returns
// the ops written.
func (e *zoneEndpoint) apply(ctx context.Context, ops []store.Op, wireKeys map[resource.Key]string, refuse func(key, reason, why string)) ([]store.Op, error) {
	write := e.store.Apply
	if e.fence != nil {
		write = e.fence.Apply
	}
	for {
		err := write(ctx, ops)
		if err == nil {
			return ops, nil
		}
		if store.IsFenced(err) {
			return nil, fmt.Errorf("zone %q connected again (to this replica or another) and its new session took over: this one ends, %w", e.zone, err)
		}
		tooLarge := map[resource.Key]*store.TooLargeError{}
		for _, tl := range store.TooLargeErrors(err) {
			if _, ours := wireKeys[tl.Key]; ours {
				tooLarge[tl.Key] = tl
			}
		}
		if len(tooLarge) == 0 {
			return nil, err
		}
		kept := ops[:0:0]
		dropped := 0
		for _, op := range ops {
			if op.Put == nil {
				kept = append(kept, op)
				continue
			}
			tl, ok := tooLarge[op.Put.Key()]
			if !ok {
				kept = append(kept, op)
				continue
			}
			limit := "the store's request limit"
			if tl.Limit > 0 {
				limit = fmt.Sprintf("the global's limit of %d bytes per resource", tl.Limit)
			}
			refuse(wireKeys[op.Put.Key()], "too-large", fmt.Sprintf(
				"%s %q is %d bytes stored, over %s (kept under etcd's request limit, --max-request-bytes): it is not stored; make it smaller, e.g. fewer inbounds, tags or labels",
				op.Put.Meta.Type, wireKeys[op.Put.Key()], tl.Size, limit))
			dropped++
		}
		if dropped == 0 {
			return nil, err // the store names a resource not in ops: do not retry
		}
		ops = kept
	}
}

// offlineFor is how long a zone has not been heard from, by its latest
// session's last-seen time (0 when it never connected).
func offlineFor(in *v1alpha1.ZoneInsight) time.Duration {
	subs := in.GetSubscriptions()
	if len(subs) == 0 || subs[0].GetLastSeen() == nil {
		return 0
	}
	return time.Since(subs[0].GetLastSeen().AsTime())
}

// unknownMesh returns the first mesh zi offers services in that is not in
// meshes, or "".
func unknownMesh(zi *v1alpha1.ZoneIngress, meshes map[string]bool) string {
	for _, svc := range zi.GetAvailableServices() {
		if !meshes[svc.GetMesh()] {
			return svc.GetMesh()
		}
	}
	return ""
}

// A zone's service summary is stored at the global as the zone sends it:
// its own record under the zone's name (as before per-service records, so
// what an older zone or data dir holds stays valid), and each service's
// record under StoredName like any resource a zone sends.

// ingressStoredName is the global's name for zone's ZoneIngress name.
func ingressStoredName(name, zone string) string {
	if name == zone {
		return zone
	}
	return StoredName(name, zone)
}

// ingressWireName is the name zone gave its ZoneIngress stored as stored,
// or false when stored is not one of zone's.
func ingressWireName(stored, zone string) (string, bool) {
	if stored == zone {
		return zone, true
	}
	return strings.CutSuffix(stored, "."+zone)
}
