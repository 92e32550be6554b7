package global

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
	"github.com/atoll-mesh/atoll/internal/vip"
)

// vipAllocator keeps each mesh's VIPTable in step with the services that
// zones offer. Every global replica runs it: writes are compare-and-swap on
// the table's version and proposals are deterministic, so replicas agree.
type vipAllocator struct {
	store    store.Store
	cache    *store.Cache // meshes, ZoneIngresses and VIP tables
	events   chan struct{}
	cidr     netip.Prefix
	cidr6    netip.Prefix // invalid (zero) when IPv6 VIPs are off
	cooldown time.Duration
	log      *slog.Logger
}

func newVIPAllocator(st store.Store, cache *store.Cache, cidr netip.Prefix, cooldown time.Duration, log *slog.Logger) *vipAllocator {
	a := &vipAllocator{store: st, cache: cache, events: make(chan struct{}, 1), cidr: cidr, cooldown: cooldown, log: log}
	cache.Signal(a.events, resource.ZoneIngressType, resource.MeshType, resource.VIPTableType)
	return a
}

// Run reconciles on every ZoneIngress, Mesh or VIPTable change (coalesced), and
// periodically so cooled-down VIPs are released.
func (a *vipAllocator) Run(ctx context.Context) error {
	events := a.events
	tick := time.NewTicker(min(time.Minute, max(a.cooldown/10, time.Second)))
	defer tick.Stop()
	th := throttle.New(50 * time.Millisecond)
	retry := time.NewTimer(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			if !th.Event() {
				continue
			}
		case <-th.C():
		case <-tick.C:
		case <-retry.C:
		}
		th.Acted()
		if err := a.reconcile(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("allocating VIPs failed; retrying", "error", err)
			retry.Reset(time.Second)
		}
	}
}

func (a *vipAllocator) reconcile(ctx context.Context) error {
	meshes := a.cache.List(resource.MeshType, "")
	offered := vip.Offered(a.cache.List(resource.ZoneIngressType, ""))
	now := time.Now()
	for _, m := range meshes {
		// The table itself is read from etcd: its version guards the write.
		key := resource.Key{Type: resource.VIPTableType, Mesh: m.Meta.Name, Name: resource.VIPTableName}
		cur, err := a.store.Get(ctx, key)
		if err != nil && !store.IsNotFound(err) {
			return err
		}
		var table *v1alpha1.VIPTable
		if cur != nil {
			table = cur.Spec.(*v1alpha1.VIPTable)
		}
		next, changed, err := vip.Reconcile(table, m.Meta.Name, offered[m.Meta.Name], a.cidr, a.cidr6, now, a.cooldown)
		if err != nil {
			return err
		}
		if !changed && cur != nil {
			continue
		}
		r := &resource.Resource{
			Meta: resource.Meta{Type: resource.VIPTableType, Mesh: m.Meta.Name, Name: resource.VIPTableName,
				Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
			Spec: next,
		}
		if cur == nil {
			_, err = a.store.Create(ctx, r)
		} else {
			r.Meta.Version = cur.Meta.Version
			_, err = a.store.Update(ctx, r)
		}
		if store.IsConflict(err) || store.IsAlreadyExists(err) {
			return err // another replica wrote first: read again and retry
		}
		if err != nil {
			return err
		}
	}
	return a.collect(ctx, meshes)
}

// collect deletes the VIP tables of meshes that no longer exist: the API
// deletes a mesh's table with the mesh, but a reconcile that read the mesh
// just before may have written it again. A table is deleted only once the
// store confirms its mesh is gone (the cache's view of meshes may be behind
// its view of tables), and only at the version read.
func (a *vipAllocator) collect(ctx context.Context, meshes []*resource.Resource) error {
	exists := make(map[string]bool, len(meshes))
	for _, m := range meshes {
		exists[m.Meta.Name] = true
	}
	for _, t := range a.cache.List(resource.VIPTableType, "") {
		if exists[t.Meta.Mesh] {
			continue
		}
		_, err := a.store.Get(ctx, resource.Key{Type: resource.MeshType, Name: t.Meta.Mesh})
		if err == nil {
			continue
		}
		if !store.IsNotFound(err) {
			return err
		}
		if err := a.store.Delete(ctx, t.Key(), t.Meta.Version); err != nil && !store.IsNotFound(err) && !store.IsConflict(err) {
			return err
		}
		a.log.Info("deleted the VIP table of a deleted mesh", "mesh", t.Meta.Mesh)
	}
	return nil
}

func vipsHandler(st store.Reader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		mesh := r.PathValue("mesh")
		if _, err := st.Get(r.Context(), resource.Key{Type: resource.MeshType, Name: mesh}); err != nil {
			apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "mesh " + mesh + " does not exist"})
			return
		}
		cur, err := st.Get(r.Context(), resource.Key{Type: resource.VIPTableType, Mesh: mesh, Name: resource.VIPTableName})
		var items []vip.View
		switch {
		case err == nil:
			items = vip.Views(cur.Spec.(*v1alpha1.VIPTable))
		case store.IsNotFound(err):
			items = []vip.View{}
		default:
			apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(items), "items": items})
	}
}
