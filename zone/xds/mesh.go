package xds

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/naming"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// meshConfig is one mesh's configuration, kept up to date incrementally
// and served from go-control-plane linear caches shared by every proxy of
// the mesh: each resource is marshalled once per version whatever the
// number of proxies, and a change re-sends only what it changed (for
// endpoints, only the affected ClusterLoadAssignments).
//
// Each input resource (a local Dataplane, another zone's ZoneIngress or
// ServiceEndpoints) is remembered with its store version and what it
// contributes; an update recomputes only the inputs whose version moved and
// the clusters they touch.
type meshConfig struct {
	zone, domain, name string
	direct             bool

	eds *edsCache
	// Envoy's clusters speak TLS with SNI to other zones' ingresses;
	// grpc-go refuses that, and gets clusters without.
	cdsEnvoy, cdsProxyless *cachev3.LinearCache
	proxyless              *cachev3.LinearCache // API listeners for gRPC clients
	gateway                *cachev3.LinearCache // Envoy outbound listeners

	inputs     map[resource.Key]*input
	generation uint64                    // of updates
	byCluster  map[string][]resource.Key // the inputs of each cluster
	clusters   map[string]clusterID      // the EDS clusters that exist
	vips       map[string]netip.Addr
	addrs      map[string][]netip.AddrPort // services' own addresses
	listeners  map[string]outbound         // Envoy outbound listeners, by name
	local      map[uint32]bool             // servicePorts with a localhost cluster
	// Listeners of a kind are built once a proxy of that kind connects.
	withProxyless, withGateway bool
	clustersMoved              bool // since listeners were last updated
}

// serve makes sure the mesh has clusters and listeners for proxies of kind
// (Envoy gateways and sidecars share them): a mesh builds for the kinds of
// proxy it has. vips and addrs are as in Input.
func (m *meshConfig) serve(kind Kind, vips map[string]netip.Addr, addrs map[string][]netip.AddrPort) {
	switch kind {
	case Proxyless:
		if m.withProxyless {
			return
		}
		m.withProxyless = true
		upd := make(map[string]types.Resource, len(m.clusters))
		for name := range m.clusters {
			upd[name] = edsCluster(name)
		}
		m.cdsProxyless.UpdateResources(upd, nil)
	default:
		if m.withGateway {
			return
		}
		m.withGateway = true
		upd := make(map[string]types.Resource, len(m.clusters)+len(m.local))
		for name, id := range m.clusters {
			upd[name] = m.envoyCluster(name, id)
		}
		for p := range m.local {
			_, c := inbound("127.0.0.1", p, p)
			upd[c.GetName()] = c
		}
		m.cdsEnvoy.UpdateResources(upd, nil)
	}
	m.updateListeners(vips, addrs)
}

type clusterID struct {
	service string
	port    uint32
}

type input struct {
	version  string
	seen     uint64 // the last update that saw it
	contribs []contribution
}

// contribution is what one input adds to one cluster.
type contribution struct {
	cluster string
	id      clusterID
	zone    string
	local   bool
	eps     []weighted
}

func newMeshConfig(zone, domain, name, versionPrefix string, logger log.Logger) *meshConfig {
	opts := func() []cachev3.LinearCacheOption {
		return []cachev3.LinearCacheOption{cachev3.WithVersionPrefix(versionPrefix), cachev3.WithLogger(logger)}
	}
	m := &meshConfig{
		zone: zone, domain: domain, name: name,
		eds:          newEDSCache(cachev3.NewLinearCache(typeEDS, opts()...), versionPrefix+"d"),
		cdsEnvoy:     cachev3.NewLinearCache(typeCDS, opts()...),
		cdsProxyless: cachev3.NewLinearCache(typeCDS, opts()...),
		proxyless:    cachev3.NewLinearCache(typeLDS, opts()...),
		gateway:      cachev3.NewLinearCache(typeLDS, opts()...),
		inputs:       map[resource.Key]*input{}, byCluster: map[string][]resource.Key{},
		clusters: map[string]clusterID{}, vips: map[string]netip.Addr{}, listeners: map[string]outbound{},
		local: map[uint32]bool{},
	}
	l := virtualOutbound()
	m.gateway.UpdateResource(l.GetName(), l)
	m.cdsEnvoy.UpdateResource(PassthroughCluster, passthroughCluster())
	return m
}

// contributions of one input resource.
func (m *meshConfig) contributions(r *resource.Resource) []contribution {
	var out []contribution
	add := func(service string, port uint32, zone string, local bool, w weighted) {
		for i := range out {
			if out[i].id.service == service && out[i].id.port == port && out[i].zone == zone {
				out[i].eps = append(out[i].eps, w)
				return
			}
		}
		out = append(out, contribution{cluster: ClusterName(service, port), id: clusterID{service, port}, zone: zone, local: local, eps: []weighted{w}})
	}
	switch spec := r.Spec.(type) {
	case *v1alpha1.Dataplane:
		n := spec.GetNetworking()
		for _, ib := range n.GetInbound() {
			if h := ib.GetHealth(); h != nil && !h.GetReady() {
				continue
			}
			service := ib.GetTags()[resource.ServiceTag]
			add(service, naming.ServicePort(service, ib.GetPort()), m.zone, true, weighted{addr: cmp.Or(ib.GetAddress(), n.GetAddress()), port: ib.GetPort(), weight: 1})
		}
	case *v1alpha1.ServiceEndpoints:
		if spec.GetZone() == m.zone {
			return nil
		}
		// Usually one port: one contribution holding every endpoint.
		portRuns(spec, func(port uint32, ws []weighted) {
			port = naming.ServicePort(spec.GetService(), port)
			out = append(out, contribution{cluster: ClusterName(spec.GetService(), port),
				id: clusterID{spec.GetService(), port}, zone: spec.GetZone(), eps: ws})
		})
		out = mergeContributions(out)
	case *v1alpha1.ZoneIngress:
		net := spec.GetNetworking()
		if spec.GetZone() == m.zone || net.GetAdvertisedAddress() == "" || net.GetAdvertisedPort() == 0 {
			return nil
		}
		for _, s := range spec.GetAvailableServices() {
			if s.GetMesh() != m.name || s.GetPort() == 0 || s.GetInstances() == 0 {
				continue
			}
			service := s.GetTags()[resource.ServiceTag]
			add(service, naming.ServicePort(service, s.GetPort()), spec.GetZone(), false,
				weighted{addr: net.GetAdvertisedAddress(), port: net.GetAdvertisedPort(), weight: s.GetInstances(), ingress: true})
		}
	}
	return out
}

// mergeContributions joins contributions to the same cluster (endpoints
// listed with their ports interleaved).
func mergeContributions(cs []contribution) []contribution {
	if len(cs) < 2 {
		return cs
	}
	byName := map[string]int{}
	out := cs[:0]
	for _, c := range cs {
		if i, ok := byName[c.cluster]; ok {
			out[i].eps = append(out[i].eps, c.eps...)
			continue
		}
		byName[c.cluster] = len(out)
		out = append(out, c)
	}
	return out
}

// update brings the configuration in line with in (in.Dataplanes, and the
// remote inputs of the mesh's cross-zone mode) and pushes what changed to
// the caches.
func (m *meshConfig) update(in Input) {
	// Switching the cross-zone mode switches the kind of remote input: the
	// other kind is no longer seen below, and dropped.
	direct := in.Mesh.GetCrossZone().GetMode() == v1alpha1.Mesh_CrossZone_Direct
	modeChanged := direct != m.direct
	m.direct = direct
	remote := in.Ingresses
	if direct {
		remote = in.Endpoints
	}
	dirty := map[string]bool{}
	if n := len(in.Dataplanes) + len(remote); len(m.inputs) == 0 && n > 8 {
		// A first build: size the maps once rather than grow them.
		m.inputs, dirty = make(map[resource.Key]*input, n), make(map[string]bool, n)
		m.byCluster, m.clusters = make(map[string][]resource.Key, n), make(map[string]clusterID, n)
	}
	m.generation++ // inputs not marked with it below are gone
	consider := func(r *resource.Resource) {
		k := r.Key()
		old := m.inputs[k]
		if old != nil && old.version == r.Meta.Version && r.Meta.Version != "" {
			old.seen = m.generation
			return
		}
		if old != nil {
			m.drop(k, old, dirty)
		}
		inp := &input{version: r.Meta.Version, seen: m.generation, contribs: m.contributions(r)}
		m.inputs[k] = inp
		for _, c := range inp.contribs {
			m.byCluster[c.cluster] = append(m.byCluster[c.cluster], k)
			dirty[c.cluster] = true
		}
	}
	for _, r := range in.Dataplanes {
		consider(r)
	}
	for _, r := range remote {
		consider(r)
	}
	for k, old := range m.inputs {
		if old.seen != m.generation {
			m.drop(k, old, dirty)
			delete(m.inputs, k)
		}
	}

	// Endpoints of the clusters that changed; clusters that appeared or went.
	n := len(dirty)
	updEDS, updCDS, updEnvoy := make(map[string]types.Resource, n), make(map[string]types.Resource, n), make(map[string]types.Resource, n)
	var delEDS, delCDS []string
	if modeChanged && m.withGateway { // Envoy's clusters speak TLS to ingresses in Ingress mode only
		for name, id := range m.clusters {
			updEnvoy[name] = m.envoyCluster(name, id)
		}
	}
	for name := range dirty {
		if len(m.byCluster[name]) == 0 {
			delete(m.byCluster, name)
			if _, ok := m.clusters[name]; ok {
				delete(m.clusters, name)
				delEDS, delCDS = append(delEDS, name), append(delCDS, name)
				m.clustersMoved = true
			}
			continue
		}
		sp := m.servicePort(name)
		updEDS[name] = loadAssignment(name, m.zone, sp)
		if _, ok := m.clusters[name]; !ok {
			id := clusterID{sp.service, sp.port}
			m.clusters[name] = id
			var c types.Resource
			if m.withProxyless {
				c = edsCluster(name)
				updCDS[name] = c
			}
			if m.withGateway {
				if c == nil || !m.direct { // the same as gRPC's: no TLS to ingresses
					c = m.envoyCluster(name, id)
				}
				updEnvoy[name] = c
			}
			m.clustersMoved = true
		}
	}
	// localhost clusters for sidecars' inbounds.
	wantLocal := map[uint32]bool{}
	for _, r := range in.Dataplanes {
		n := r.Spec.(*v1alpha1.Dataplane).GetNetworking()
		if n.GetGateway() != nil {
			continue
		}
		for _, ib := range n.GetInbound() {
			wantLocal[cmp.Or(ib.GetServicePort(), ib.GetPort())] = true
		}
	}
	for p := range wantLocal {
		if !m.local[p] && m.withGateway {
			_, c := inbound("127.0.0.1", p, p)
			updEnvoy[c.GetName()] = c
		}
	}
	for p := range m.local {
		if !wantLocal[p] && m.withGateway {
			delCDS = append(delCDS, localCluster(p))
		}
	}
	m.local = wantLocal
	if len(updEDS)+len(delEDS) > 0 {
		m.eds.UpdateResources(updEDS, delEDS)
	}
	if m.withProxyless {
		var del []string
		for _, name := range delCDS {
			if !strings.HasPrefix(name, "localhost:") {
				del = append(del, name)
			}
		}
		if len(updCDS)+len(del) > 0 {
			m.cdsProxyless.UpdateResources(updCDS, del)
		}
	}
	if m.withGateway && len(updEnvoy)+len(delCDS) > 0 {
		m.cdsEnvoy.UpdateResources(updEnvoy, delCDS)
	}
	if m.clustersMoved || !maps.Equal(in.VIPs, m.vips) || !sameAddresses(in.ServiceAddresses, m.addrs) {
		m.updateListeners(in.VIPs, in.ServiceAddresses)
	}
}

// sameAddresses reports whether two maps of services' own addresses are
// equal (nil and empty alike).
func sameAddresses(a, b map[string][]netip.AddrPort) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

func (m *meshConfig) drop(k resource.Key, old *input, dirty map[string]bool) {
	for _, c := range old.contribs {
		keys := m.byCluster[c.cluster]
		if i := slices.Index(keys, k); i >= 0 {
			keys[i] = keys[len(keys)-1]
			m.byCluster[c.cluster] = keys[:len(keys)-1]
		}
		dirty[c.cluster] = true
	}
}

// servicePort gathers a cluster's endpoints from its inputs, in a stable
// order: local first, then by zone.
func (m *meshConfig) servicePort(name string) *servicePort {
	keys := m.byCluster[name]
	if len(keys) == 1 {
		// The common case with Direct meshes (one ServiceEndpoints per
		// zone and service): no merging, no copies.
		for _, k := range keys {
			for _, c := range m.inputs[k].contribs {
				if c.cluster == name {
					sp := &servicePort{service: c.id.service, port: c.id.port}
					sortWeighted(c.eps)
					if c.local {
						sp.local = c.eps
					} else {
						sp.remote = []endpointGroup{{zone: c.zone, endpoints: c.eps}}
					}
					return sp
				}
			}
		}
	}
	var sp *servicePort
	remote := map[string][]weighted{}
	for _, k := range slices.SortedFunc(slices.Values(keys), compareKeys) {
		for _, c := range m.inputs[k].contribs {
			if c.cluster != name {
				continue
			}
			if sp == nil {
				sp = &servicePort{service: c.id.service, port: c.id.port}
			}
			if c.local {
				sp.local = append(sp.local, c.eps...)
			} else {
				remote[c.zone] = append(remote[c.zone], c.eps...)
			}
		}
	}
	sortWeighted(sp.local)
	for _, zone := range slices.Sorted(maps.Keys(remote)) {
		sortWeighted(remote[zone])
		sp.remote = append(sp.remote, endpointGroup{zone: zone, endpoints: remote[zone]})
	}
	return sp
}

// envoyCluster is a cluster as Envoy gets it: in Ingress mode with TLS and
// the service's SNI towards other zones' ingresses.
func (m *meshConfig) envoyCluster(name string, id clusterID) types.Resource {
	if m.direct {
		return edsCluster(name)
	}
	return edsClusterSNI(name, SNI(m.name, id.service, id.port))
}

func compareKeys(a, b resource.Key) int {
	return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Mesh, b.Mesh), cmp.Compare(a.Name, b.Name))
}

// updateListeners adds and removes the proxyless and gateway listeners of
// clusters that appeared or went, and moves gateway listeners whose
// service's VIP or own addresses changed.
func (m *meshConfig) updateListeners(vips map[string]netip.Addr, addrs map[string][]netip.AddrPort) {
	m.clustersMoved = false
	m.vips, m.addrs = maps.Clone(vips), maps.Clone(addrs)
	var wantProxyless map[string]string // listener → cluster
	var wantGateway map[string]outbound
	if m.withProxyless {
		wantProxyless = make(map[string]string, 2*len(m.clusters))
		for name, id := range m.clusters {
			if _, named := vips[id.service]; named {
				port := strconv.FormatUint(uint64(id.port), 10)
				for _, n := range dns.ServiceNames(id.service) {
					wantProxyless[n+"."+m.domain+":"+port] = name
				}
			}
		}
	}
	if m.withGateway {
		wantGateway = outbounds(maps.All(m.clusters), vips, addrs)
	}
	have := m.proxyless.GetResources()
	upd, del := make(map[string]types.Resource, len(wantProxyless)), []string(nil)
	for l, c := range wantProxyless {
		if _, ok := have[l]; !ok {
			upd[l] = apiListener(l, c)
		}
	}
	for l := range have {
		if _, ok := wantProxyless[l]; !ok {
			del = append(del, l)
		}
	}
	if len(upd)+len(del) > 0 {
		m.proxyless.UpdateResources(upd, del)
	}
	upd, del = make(map[string]types.Resource, len(wantGateway)), nil
	for l, o := range wantGateway {
		if have, ok := m.listeners[l]; !ok || have != o {
			upd[l] = outboundListener(l, o.addr, o.cluster)
		}
	}
	for l := range m.listeners {
		if _, ok := wantGateway[l]; !ok {
			del = append(del, l)
		}
	}
	if len(upd)+len(del) > 0 {
		m.gateway.UpdateResources(upd, del)
	}
	m.listeners = wantGateway
}

func localCluster(port uint32) string { return "localhost:" + strconv.FormatUint(uint64(port), 10) }
