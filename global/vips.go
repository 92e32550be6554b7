package global

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
	"github.com/atoll-mesh/atoll/internal/vip"
)

// vipAllocator keeps each mesh's VIP records (one VIPTable per service,
// see vip.Plan) in step with the services that zones offer. Every global
// replica runs it. It decides from the cache whether anything needs
// writing, so an idle reconcile costs no etcd round trip; a mesh that
// does is settled under the mesh's fence (store.Fencer): take the fence,
// read the mesh's records from the store, plan again, write through the
// fence. A replica whose fence another took meanwhile writes nothing and
// starts over, so two replicas never write from the same stale read and a
// VIP is never given twice. Proposals are deterministic, so replicas agree.
type vipAllocator struct {
	store    store.Store
	cache    *store.Cache // meshes, ZoneIngresses and VIP records
	events   chan struct{}
	cidr     netip.Prefix
	cidr6    netip.Prefix // invalid (zero) when IPv6 VIPs are off
	cooldown time.Duration
	log      *slog.Logger
}

// vipFence is the name of the fence a mesh's VIP records are written
// under. Zone names, the other fences' names, hold no '/'.
func vipFence(mesh string) string { return "vip-allocator/" + mesh }

// maxFencedAttempts bounds how often a reconcile starts over because
// another replica wrote the same mesh meanwhile; it then fails and is
// retried later.
const maxFencedAttempts = 8

func newVIPAllocator(st store.Store, cache *store.Cache, cidr netip.Prefix, cooldown time.Duration, log *slog.Logger) *vipAllocator {
	a := &vipAllocator{store: st, cache: cache, events: make(chan struct{}, 1), cidr: cidr, cooldown: cooldown, log: log}
	cache.Signal(a.events, resource.ZoneIngressType, resource.MeshType, resource.VIPTableType)
	return a
}

// Run reconciles at once (migrating legacy tables), then on every
// ZoneIngress, Mesh or VIPTable change (coalesced), and periodically so
// cooled-down VIPs are released.
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
	var full []error // meshes whose range is full: the rest is still written
	for _, m := range meshes {
		mesh := m.Meta.Name
		plan := func(records []*resource.Resource) ([]store.Op, error) {
			return vip.Plan(records, mesh, offered[mesh], a.cidr, a.cidr6, now, a.cooldown)
		}
		ops, err := plan(a.cache.List(resource.VIPTableType, mesh))
		if err != nil && !errors.Is(err, vip.ErrFull) {
			return fmt.Errorf("allocating VIPs in mesh %q: %w", mesh, err)
		}
		if len(ops) > 0 {
			err = a.settle(ctx, mesh, plan)
		}
		switch {
		case errors.Is(err, vip.ErrFull):
			full = append(full, err)
		case err != nil:
			return fmt.Errorf("writing the VIPs of mesh %q: %w", mesh, err)
		}
	}
	if err := a.collect(ctx, meshes); err != nil {
		return err
	}
	return errors.Join(full...)
}

// settle writes plan's ops for mesh under the mesh's fence, planned from
// the records the store holds once the fence is taken. A plan that
// migrated a legacy table is followed by the plan that reconciles. A plan
// that found the range full is written, and its error returned.
func (a *vipAllocator) settle(ctx context.Context, mesh string, plan func([]*resource.Resource) ([]store.Op, error)) error {
	for fenced := 0; ; {
		write := a.store.Apply
		if f, ok := a.store.(store.Fencer); ok {
			fence, err := f.Fence(ctx, vipFence(mesh))
			if err != nil {
				return err
			}
			write = fence.Apply
		}
		records, err := a.store.List(ctx, resource.VIPTableType, mesh)
		if err != nil {
			return err
		}
		ops, full := plan(records)
		if full != nil && !errors.Is(full, vip.ErrFull) || len(ops) == 0 {
			return full
		}
		err = write(ctx, ops)
		switch {
		case store.IsFenced(err):
			// Another replica wrote the mesh meanwhile: read it again,
			// after a moment that differs between replicas.
			if fenced++; fenced == maxFencedAttempts {
				return err
			}
			wait := time.NewTimer(time.Duration(rand.Int64N(int64(fenced) * int64(10*time.Millisecond))))
			select {
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			case <-wait.C:
			}
		case err != nil:
			return err
		case !migrated(ops):
			return full
		default:
			a.log.Info("split a mesh's legacy VIP table into one record per service", "mesh", mesh, "services", len(ops)-1)
		}
	}
}

// migrated reports whether ops delete a legacy VIP table.
func migrated(ops []store.Op) bool {
	last := ops[len(ops)-1]
	return last.Put == nil && last.Delete.Name == resource.VIPTableName
}

// collect deletes the VIP records of meshes that no longer exist: the API
// deletes a mesh's records with the mesh, but a reconcile that read the
// mesh just before may have written some again. A mesh's records are
// deleted under its fence, read from the store once the store confirms
// the mesh is gone (the cache's view of meshes may be behind its view of
// records).
func (a *vipAllocator) collect(ctx context.Context, meshes []*resource.Resource) error {
	exists := make(map[string]bool, len(meshes))
	for _, m := range meshes {
		exists[m.Meta.Name] = true
	}
	gone := map[string]bool{}
	for _, t := range a.cache.List(resource.VIPTableType, "") {
		if !exists[t.Meta.Mesh] {
			gone[t.Meta.Mesh] = true
		}
	}
	for mesh := range gone {
		_, err := a.store.Get(ctx, resource.Key{Type: resource.MeshType, Name: mesh})
		if err == nil {
			continue
		}
		if !store.IsNotFound(err) {
			return err
		}
		err = a.settle(ctx, mesh, func(records []*resource.Resource) ([]store.Op, error) {
			// In reverse name order: a legacy table ("vips", listed
			// last) is deleted first, so settle does not take these
			// deletes for a migration.
			ops := make([]store.Op, 0, len(records))
			for _, r := range slices.Backward(records) {
				ops = append(ops, store.Op{Delete: r.Key()})
			}
			return ops, nil
		})
		if err != nil {
			return err
		}
		a.log.Info("deleted the VIP records of a deleted mesh", "mesh", mesh)
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
		// Every record of the mesh: services' own and a legacy table not
		// yet migrated.
		records, err := st.List(r.Context(), resource.VIPTableType, mesh)
		if err != nil {
			apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		items := vip.Views(&v1alpha1.VIPTable{Entries: vip.Entries(records)})
		apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(items), "items": items})
	}
}
