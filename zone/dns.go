package zone

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
	"github.com/atoll-mesh/atoll/internal/vip"
)

// resolver keeps the DNS table and the VIP view in step with the VIP
// records the global sends and the services zones offer. A service the global has
// not given a VIP yet (it is unreachable, or has not caught up) gets the
// zone's deterministic proposal, which is what the global will usually
// assign, so names resolve at once and usually keep their address.
//
// Where several services map to one DNS name, vip.Settle decides which one
// holds it, from the VIP records every zone shares; the others are listed with
// their conflict in the VIP view, counted and logged once.
type resolver struct {
	cache  *store.Cache // VIP tables, ZoneIngresses, meshes
	events chan struct{}
	built  [3]uint64 // the cache generations the table was built from
	cidr   netip.Prefix
	cidr6  netip.Prefix // zero when IPv6 VIPs are off
	domain string
	srv    *dns.Server // nil when DNS is disabled
	views  atomic.Pointer[map[string][]vip.View]
	// onChange, when set, is told after each rebuild.
	onChange func()

	log       *slog.Logger
	conflicts prometheus.Gauge
	// logged holds the conflicts already logged, so each is logged once
	// while it lasts; it holds only current conflicts.
	logged map[string]bool
}

// VIPs is a mesh's service VIPs (IPv4), assigned or proposed. A service
// that lost its DNS name to another in its mesh has none.
func (r *resolver) VIPs(mesh string) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	if v := r.views.Load(); v != nil {
		for _, view := range (*v)[mesh] {
			if a, err := netip.ParseAddr(view.VIP); err == nil {
				out[view.Service] = a
			}
		}
	}
	return out
}

func newResolver(cache *store.Cache, cidr netip.Prefix, domain string, log *slog.Logger, reg prometheus.Registerer) *resolver {
	r := &resolver{cache: cache, events: make(chan struct{}, 1), cidr: cidr, domain: domain, log: log, logged: map[string]bool{},
		conflicts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_dns_name_conflicts",
			Help: "Services that map to a DNS name another service holds (GET /meshes/{mesh}/vips lists them).",
		}),
	}
	if reg != nil {
		reg.MustRegister(r.conflicts)
	}
	cache.Signal(r.events, resource.VIPTableType, resource.ZoneIngressType, resource.MeshType)
	return r
}

// rebuild makes the DNS table and the VIP view from the cache, unless
// neither VIP tables, ZoneIngresses nor meshes changed since the last build.
func (r *resolver) rebuild() {
	gens := [3]uint64{r.cache.Generation(resource.VIPTableType), r.cache.Generation(resource.ZoneIngressType), r.cache.Generation(resource.MeshType)}
	if gens == r.built && r.views.Load() != nil {
		return
	}
	r.built = gens
	tables := r.cache.List(resource.VIPTableType, "")
	offered := vip.Offered(r.cache.List(resource.ZoneIngressType, ""))
	// Only meshes that exist: a ZoneIngress may name any mesh.
	exists := map[string]bool{}
	for _, m := range r.cache.List(resource.MeshType, "") {
		exists[m.Meta.Name] = true
	}
	for m := range offered {
		if !exists[m] {
			delete(offered, m)
		}
	}
	// A mesh's VIPs are in many records (one per service, and a legacy
	// table until the global migrates it): gather them per mesh.
	records := map[string][]*resource.Resource{}
	for _, t := range tables {
		records[t.Meta.Mesh] = append(records[t.Meta.Mesh], t)
	}
	assigned := map[string]map[string]*v1alpha1.VIPTable_Entry{}
	taken := map[string]map[netip.Addr]bool{}
	for mesh, rs := range records {
		assigned[mesh], taken[mesh] = map[string]*v1alpha1.VIPTable_Entry{}, map[netip.Addr]bool{}
		for _, e := range vip.Entries(rs) {
			assigned[mesh][e.GetService()] = e
			for _, s := range []string{e.GetVip(), e.GetVip6()} {
				if a, err := netip.ParseAddr(s); err == nil {
					taken[mesh][a] = true
				}
			}
		}
	}
	views := map[string][]vip.View{}
	// The default mesh's names win when meshes share a service name.
	meshes := make([]string, 0, len(offered))
	for m := range offered {
		meshes = append(meshes, m)
	}
	sort.Slice(meshes, func(i, j int) bool {
		if (meshes[i] == resource.DefaultMesh) != (meshes[j] == resource.DefaultMesh) {
			return meshes[i] == resource.DefaultMesh
		}
		return meshes[i] < meshes[j]
	})
	type holder struct{ mesh, service string }
	names := map[string][]netip.Addr{}
	heldBy := map[string]holder{}
	for _, mesh := range meshes {
		services := make([]string, 0, len(offered[mesh]))
		candidates := make([]string, 0, len(offered[mesh])+len(assigned[mesh]))
		inTable := make(map[string]bool, len(assigned[mesh]))
		for s := range offered[mesh] {
			services = append(services, s)
			candidates = append(candidates, s)
		}
		for s := range assigned[mesh] {
			candidates = append(candidates, s)
			inTable[s] = true
		}
		sort.Strings(services)
		lost := vip.Settle(candidates, inTable)
		if taken[mesh] == nil {
			taken[mesh] = map[netip.Addr]bool{}
		}
		for _, s := range services {
			v := vip.View{Service: s}
			if c, conflict := lost[s]; conflict {
				v.Conflict = &c
				views[mesh] = append(views[mesh], v)
				continue
			}
			if e := assigned[mesh][s]; e != nil {
				v.VIP, v.VIP6 = e.GetVip(), e.GetVip6()
			}
			if v.VIP == "" {
				a, err := vip.Propose(r.cidr, mesh, s, taken[mesh])
				if err != nil {
					continue
				}
				taken[mesh][a] = true
				v.VIP, v.Proposed = a.String(), true
			}
			if v.VIP6 == "" && r.cidr6.IsValid() {
				if a, err := vip.Propose(r.cidr6, mesh, s, taken[mesh]); err == nil {
					taken[mesh][a] = true
					v.VIP6, v.Proposed = a.String(), true
				}
			}
			var addrs []netip.Addr
			for _, a := range []string{v.VIP, v.VIP6} {
				if addr, err := netip.ParseAddr(a); err == nil {
					addrs = append(addrs, addr)
				}
			}
			for _, n := range dns.ServiceNames(s) {
				if h, dup := heldBy[n]; dup {
					if v.Conflict == nil {
						v.Conflict = &vip.Conflict{Name: n, HeldBy: h.service, Mesh: h.mesh}
					}
					continue
				}
				names[n], heldBy[n] = addrs, holder{mesh, s}
			}
			views[mesh] = append(views[mesh], v)
		}
	}
	r.report(views)
	if r.srv != nil {
		r.srv.SetTable(dns.NewTable(r.domain, names))
	}
	old := r.views.Swap(&views)
	// xDS follows the VIPs: tell it only when they moved, not on every
	// ZoneIngress or VIP table write.
	if r.onChange != nil && (old == nil || !maps.EqualFunc(*old, views, viewsEqual)) {
		r.onChange()
	}
}

func viewsEqual(a, b []vip.View) bool {
	return slices.EqualFunc(a, b, func(x, y vip.View) bool {
		return x.Service == y.Service && x.VIP == y.VIP && x.VIP6 == y.VIP6 && x.Proposed == y.Proposed
	})
}

// report counts the conflicts and logs each new one once.
func (r *resolver) report(views map[string][]vip.View) {
	now := map[string]bool{}
	for mesh, vs := range views {
		for _, v := range vs {
			c := v.Conflict
			if c == nil {
				continue
			}
			key := mesh + "/" + v.Service + "/" + c.Name + "/" + c.Mesh + "/" + c.HeldBy
			now[key] = true
			if r.logged[key] {
				continue
			}
			if c.Mesh == "" {
				r.log.Warn("a service maps to a DNS name another service holds: it gets no VIP and no name; rename it (service names are lowercase DNS labels)",
					"mesh", mesh, "service", v.Service, "name", c.Name+"."+r.domain, "heldBy", c.HeldBy)
			} else {
				r.log.Warn("a service's DNS name answers with a service of another mesh",
					"mesh", mesh, "service", v.Service, "name", c.Name+"."+r.domain, "heldBy", c.HeldBy, "holderMesh", c.Mesh)
			}
		}
	}
	r.logged = now
	r.conflicts.Set(float64(len(now)))
}

// Run rebuilds on every VIPTable or ZoneIngress change, coalesced.
func (r *resolver) Run(ctx context.Context) error {
	th := throttle.New(20 * time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.events:
			if !th.Event() {
				continue
			}
		case <-th.C():
		}
		th.Acted()
		r.rebuild()
	}
}

func (r *resolver) handler(w http.ResponseWriter, req *http.Request) {
	mesh := req.PathValue("mesh")
	if _, err := r.cache.Get(resource.Key{Type: resource.MeshType, Name: mesh}); err != nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "mesh " + mesh + " does not exist"})
		return
	}
	items := []vip.View{}
	if v := r.views.Load(); v != nil && (*v)[mesh] != nil {
		items = (*v)[mesh]
	}
	apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(items), "items": items})
}
