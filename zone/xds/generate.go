// Package xds serves Envoy and proxyless gRPC configuration from a zone:
// for each connected proxy, listeners for the services it can reach,
// clusters, and endpoints with this zone's instances first and the other
// zones' after (through their ingress, or directly for Direct meshes).
package xds

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/naming"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Input is what the zone knows of one mesh.
type Input struct {
	Zone   string
	Domain string // the DNS domain, "mesh"
	// MeshName and Mesh are the mesh the proxy belongs to.
	MeshName string
	Mesh     *v1alpha1.Mesh
	// Dataplanes are this zone's Dataplanes of the mesh.
	Dataplanes []*resource.Resource
	// Ingresses are the other zones' ZoneIngresses.
	Ingresses []*resource.Resource
	// Endpoints are the other zones' ServiceEndpoints of the mesh (Direct).
	Endpoints []*resource.Resource
	// VIPs maps each service to its IPv4 VIP.
	VIPs map[string]netip.Addr
	// ServiceAddresses maps services to addresses of their own, such as a
	// Kubernetes Service's ClusterIP:port, on which Envoy proxies get
	// outbound listeners besides the VIP's (see outbound.go). Optional.
	ServiceAddresses map[string][]netip.AddrPort
}

// Kind is the consumer of a configuration.
type Kind int

const (
	// Envoy is a sidecar: listeners bound to addresses.
	Envoy Kind = iota
	// Proxyless is a gRPC client: one API listener per service name and port.
	Proxyless
	// IngressProxy is the zone's ingress (an Envoy): see GenerateIngress.
	IngressProxy
)

// Proxy is the proxy a configuration is for.
type Proxy struct {
	Kind      Kind
	Dataplane *resource.Resource
}

// Names of the generated resources.
const (
	// PassthroughCluster takes what no outbound listener matches.
	PassthroughCluster = "outbound:passthrough"
	// OutboundPort is the virtual listener that traffic redirected from the
	// workload arrives at.
	OutboundPort = 15001
)

// ClusterName is the cluster of a service's port.
func ClusterName(service string, port uint32) string {
	return service + ":" + strconv.FormatUint(uint64(port), 10)
}

// endpointGroup is the instances of one service port in one zone.
type endpointGroup struct {
	zone      string
	endpoints []weighted
}

type weighted struct {
	addr   string
	port   uint32
	weight uint32
	// ingress marks another zone's ingress: traffic to it is TLS with the
	// service's SNI (Envoy only).
	ingress bool
}

// servicePort is one port of one service with where it runs.
type servicePort struct {
	service string
	port    uint32
	local   []weighted
	remote  []endpointGroup
}

// model gathers every service port the proxy can reach.
func model(in Input) []*servicePort {
	ports := map[clusterID]*servicePort{}
	get := func(service string, port uint32) *servicePort {
		k := clusterID{service, port}
		sp := ports[k]
		if sp == nil {
			sp = &servicePort{service: service, port: port}
			ports[k] = sp
		}
		return sp
	}
	for _, r := range in.Dataplanes {
		n := r.Spec.(*v1alpha1.Dataplane).GetNetworking()
		for _, ib := range n.GetInbound() {
			if h := ib.GetHealth(); h != nil && !h.GetReady() {
				continue
			}
			service := ib.GetTags()[resource.ServiceTag]
			sp := get(service, naming.ServicePort(service, ib.GetPort()))
			sp.local = append(sp.local, weighted{addr: cmp.Or(ib.GetAddress(), n.GetAddress()), port: ib.GetPort(), weight: 1})
		}
	}
	// remote adds endpoints of zone to a service port: the group of that
	// zone, if last added, or a new one (sorted and merged below).
	remote := func(sp *servicePort, zone string, ws ...weighted) {
		if g := len(sp.remote) - 1; g >= 0 && sp.remote[g].zone == zone {
			sp.remote[g].endpoints = append(sp.remote[g].endpoints, ws...)
			return
		}
		sp.remote = append(sp.remote, endpointGroup{zone: zone, endpoints: ws})
	}
	if in.Mesh.GetCrossZone().GetMode() == v1alpha1.Mesh_CrossZone_Direct {
		for _, r := range in.Endpoints {
			se := r.Spec.(*v1alpha1.ServiceEndpoints)
			if se.GetZone() == in.Zone {
				continue
			}
			portRuns(se, func(port uint32, ws []weighted) {
				remote(get(se.GetService(), naming.ServicePort(se.GetService(), port)), se.GetZone(), ws...)
			})
		}
	} else {
		for _, r := range in.Ingresses {
			zi := r.Spec.(*v1alpha1.ZoneIngress)
			net := zi.GetNetworking()
			if zi.GetZone() == in.Zone || net.GetAdvertisedAddress() == "" || net.GetAdvertisedPort() == 0 {
				continue // an ingress without an address cannot be reached
			}
			for _, s := range zi.GetAvailableServices() {
				if s.GetMesh() != in.MeshName || s.GetPort() == 0 || s.GetInstances() == 0 {
					continue
				}
				service := s.GetTags()[resource.ServiceTag]
				remote(get(service, naming.ServicePort(service, s.GetPort())), zi.GetZone(),
					weighted{addr: net.GetAdvertisedAddress(), port: net.GetAdvertisedPort(), weight: s.GetInstances(), ingress: true})
			}
		}
	}
	out := make([]*servicePort, 0, len(ports))
	for _, sp := range ports {
		sortWeighted(sp.local)
		sp.remote = mergeGroups(sp.remote)
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, b *servicePort) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.port, b.port))
	})
	return out
}

// mergeGroups orders endpoint groups by zone, joining those of the same
// zone, with their endpoints sorted.
func mergeGroups(gs []endpointGroup) []endpointGroup {
	if len(gs) > 1 {
		slices.SortStableFunc(gs, func(a, b endpointGroup) int { return cmp.Compare(a.zone, b.zone) })
		out := gs[:1]
		for _, g := range gs[1:] {
			if last := &out[len(out)-1]; last.zone == g.zone {
				last.endpoints = append(last.endpoints, g.endpoints...)
				continue
			}
			out = append(out, g)
		}
		gs = out
	}
	for _, g := range gs {
		sortWeighted(g.endpoints)
	}
	return gs
}

// portRuns calls fn with each run of se's endpoints that share a port
// (usually one run: instances of a service share its port).
func portRuns(se *v1alpha1.ServiceEndpoints, fn func(port uint32, ws []weighted)) {
	eps := se.GetEndpoints()
	for i := 0; i < len(eps); {
		j := i
		for j < len(eps) && eps[j].GetPort() == eps[i].GetPort() {
			j++
		}
		ws := make([]weighted, 0, j-i)
		for _, e := range eps[i:j] {
			ws = append(ws, weighted{addr: e.GetAddress(), port: e.GetPort(), weight: 1})
		}
		fn(eps[i].GetPort(), ws)
		i = j
	}
}

func sortWeighted(ws []weighted) {
	slices.SortFunc(ws, func(a, b weighted) int {
		return cmp.Or(cmp.Compare(a.addr, b.addr), cmp.Compare(a.port, b.port))
	})
}

// Resources is a generated configuration, by xDS type URL.
type Resources map[resourcev3.Type][]types.Resource

// Generate builds the configuration of proxy from in.
func Generate(in Input, proxy Proxy) (Resources, error) {
	out := Resources{resourcev3.ListenerType: nil, resourcev3.ClusterType: nil, resourcev3.EndpointType: nil}
	add := func(t resourcev3.Type, r types.Resource) { out[t] = append(out[t], r) }
	ingressMode := in.Mesh.GetCrossZone().GetMode() == v1alpha1.Mesh_CrossZone_Ingress
	sps := model(in)
	names := make([]string, len(sps)) // of the clusters
	for i, sp := range sps {
		name := ClusterName(sp.service, sp.port)
		names[i] = name
		if proxy.Kind == Envoy && ingressMode {
			add(resourcev3.ClusterType, edsClusterSNI(name, SNI(in.MeshName, sp.service, sp.port)))
		} else {
			add(resourcev3.ClusterType, edsCluster(name))
		}
		add(resourcev3.EndpointType, loadAssignment(name, in.Zone, sp))
		// A service without a VIP lost its name to another (a name
		// conflict, see internal/vip): it gets no listener either.
		if _, named := in.VIPs[sp.service]; proxy.Kind == Proxyless && named {
			for _, n := range dns.ServiceNames(sp.service) {
				add(resourcev3.ListenerType, apiListener(n+"."+in.Domain+":"+strconv.FormatUint(uint64(sp.port), 10), name))
			}
		}
	}
	if proxy.Kind == Envoy {
		clusters := func(yield func(string, clusterID) bool) {
			for i, sp := range sps {
				if !yield(names[i], clusterID{sp.service, sp.port}) {
					return
				}
			}
		}
		obs := outbounds(clusters, in.VIPs, in.ServiceAddresses)
		for _, name := range slices.Sorted(maps.Keys(obs)) {
			add(resourcev3.ListenerType, outboundListener(name, obs[name].addr, obs[name].cluster))
		}
		dp := proxy.Dataplane.Spec.(*v1alpha1.Dataplane).GetNetworking()
		if dp.GetGateway() == nil {
			for _, ib := range dp.GetInbound() {
				l, c := inbound(cmp.Or(ib.GetAddress(), dp.GetAddress()), ib.GetPort(), cmp.Or(ib.GetServicePort(), ib.GetPort()))
				add(resourcev3.ListenerType, l)
				add(resourcev3.ClusterType, c)
			}
		}
		add(resourcev3.ListenerType, virtualOutbound())
		add(resourcev3.ClusterType, passthroughCluster())
	}
	return out, nil
}

// The xDS types served.
const (
	typeLDS = resourcev3.ListenerType
	typeCDS = resourcev3.ClusterType
	typeEDS = resourcev3.EndpointType
)

func passthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(5 * time.Second),
	}
}

// Parts every EDS cluster shares. Generated resources are never modified
// once built, so they may share sub-messages.
var (
	edsType    = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	edsConfig  = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}}
	connectIn5 = durationpb.New(5 * time.Second)
)

// SNI names a service port of a mesh in TLS to another zone's ingress,
// which routes by it.
func SNI(mesh, service string, port uint32) string {
	return service + "." + strconv.FormatUint(uint64(port), 10) + "." + mesh
}

// ingressMatch marks the endpoints that are other zones' ingresses: a
// cluster's transport socket match applies TLS with SNI to them only.
var ingressMatch = &structpb.Struct{Fields: map[string]*structpb.Value{"atoll.io/ingress": structpb.NewBoolValue(true)}}

// edsClusterSNI is an EDS cluster that speaks TLS with sni to endpoints
// that are other zones' ingresses (grpc-go refuses transport socket
// matches: proxyless clients get edsCluster).
func edsClusterSNI(name, sni string) *clusterv3.Cluster {
	c := edsCluster(name)
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{{
		Name:  "ingress",
		Match: ingressMatch,
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: upstreamTLSWire(sni)}},
	}}
	return c
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: edsType,
		EdsClusterConfig:     edsConfig,
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		ConnectTimeout:       connectIn5,
	}
}

// loadAssignment puts this zone's instances at priority 0 and the other
// zones' at the next priority (priorities must start at 0 and be
// contiguous, so remote zones take 0 when there is no local instance).
// The endpoints are in wire form (see wire.go).
func loadAssignment(name, zone string, sp *servicePort) *endpointv3.ClusterLoadAssignment {
	size := 0
	for _, w := range sp.local {
		size += len(w.addr) + 24
	}
	for _, g := range sp.remote {
		size += len(g.zone) + 24
		for _, w := range g.endpoints {
			size += len(w.addr) + 24
		}
	}
	b := make([]byte, 0, size+len(zone)+24)
	remotePriority := uint32(0)
	if len(sp.local) > 0 {
		b = appendLocality(b, zone, 0, sp.local)
		remotePriority = 1
	}
	for _, g := range sp.remote {
		b = appendLocality(b, g.zone, remotePriority, g.endpoints)
	}
	return newLoadAssignment(name, b)
}

var ingressMetadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.transport_socket_match": ingressMatch}}

func socketAddress(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func typed(m proto.Message) (*anypb.Any, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", m, err)
	}
	return a, nil
}

// apiListener is what a gRPC client resolving xds:///name asks for.
func apiListener(name, cluster string) *listenerv3.Listener {
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: hcmWire(name, cluster)}}
}

func tcpProxy(statPrefix, cluster string) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpProxyWire(statPrefix, cluster)}}
}

// outboundListener takes connections to addr (a service's VIP and port,
// or an address of its own), handed over by the virtual outbound listener
// (it binds nothing itself). A gateway has one per service port: written
// in wire form (wire.go).
func outboundListener(name string, addr netip.AddrPort, cluster string) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name}
	l.ProtoReflect().SetUnknown(outboundListenerWire(addr.Addr().String(), uint32(addr.Port()), name, cluster))
	return l
}

// virtualOutbound receives the workload's redirected connections and hands
// each to the listener of its original destination, or passes it through.
func virtualOutbound() *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:           "outbound",
		Address:        socketAddress("0.0.0.0", OutboundPort),
		UseOriginalDst: wrapperspb.Bool(true),
		FilterChains:   []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxy("outbound:passthrough", PassthroughCluster)}}},
	}
}

// VirtualOutboundIPv6Name names VirtualOutboundIPv6.
const VirtualOutboundIPv6Name = "outbound-ipv6"

// VirtualOutboundIPv6 is the virtual outbound listener on [::]:OutboundPort
// for a pod with IPv6, where the transparent proxy redirects its IPv6
// connections. It is a static listener of the sidecar's bootstrap, which
// knows whether the pod has IPv6: the zone's IPv4 one is shared by a mesh's
// gateways, and binding [::] fails where a pod has no IPv6. It hands each
// connection to the listener of its original destination (a VIP's or a
// ClusterIP's, from the zone) or passes it through, as the IPv4 one does.
func VirtualOutboundIPv6() *listenerv3.Listener {
	l := virtualOutbound()
	l.Name, l.Address = VirtualOutboundIPv6Name, socketAddress("::", OutboundPort)
	return l
}

// inbound forwards what reaches one inbound to the workload on localhost.
func inbound(addr string, port, servicePort uint32) (*listenerv3.Listener, *clusterv3.Cluster) {
	name := "inbound:" + hostPort(addr, port)
	cluster := localCluster(servicePort)
	l := &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress(addr, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{tcpProxy(name, cluster)}}},
	}
	c := &clusterv3.Cluster{
		Name:                 cluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress("127.0.0.1", servicePort),
			}}}},
		}}},
	}
	return l, c
}

func hostPort(addr string, port uint32) string {
	if a, err := netip.ParseAddr(addr); err == nil {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return addr + ":" + strconv.FormatUint(uint64(port), 10)
}

// IngressInput is what a zone's ingress proxy is configured from.
type IngressInput struct {
	Zone string
	// Address and Port are where the ingress listens.
	Address string
	Port    uint32
	// Dataplanes are this zone's Dataplanes, of every mesh.
	Dataplanes []*resource.Resource
	// CertPEM and KeyPEM are the certificate the ingress presents to
	// other zones' proxies (they connect with TLS to send SNI).
	CertPEM, KeyPEM []byte
}

// IngressCluster is the ingress's cluster of a mesh's service port.
func IngressCluster(mesh, service string, port uint32) string {
	return mesh + "/" + ClusterName(service, port)
}

// IngressListener is the name of the ingress's listener.
const IngressListener = "ingress"

// GenerateIngress configures a zone's ingress: one listener that reads the
// SNI of each connection from another zone (TLS inspector), terminates the
// TLS, and forwards the connection to this zone's healthy instances of the
// service port the SNI names.
func GenerateIngress(in IngressInput) (Resources, error) {
	out := Resources{typeLDS: nil, typeCDS: nil, typeEDS: nil}
	type key struct {
		mesh, service string
		port          uint32
	}
	groups := map[key][]weighted{}
	for _, r := range in.Dataplanes {
		n := r.Spec.(*v1alpha1.Dataplane).GetNetworking()
		for _, ib := range n.GetInbound() {
			if h := ib.GetHealth(); h != nil && !h.GetReady() {
				continue
			}
			service := ib.GetTags()[resource.ServiceTag]
			k := key{r.Meta.Mesh, service, naming.ServicePort(service, ib.GetPort())}
			groups[k] = append(groups[k], weighted{addr: cmp.Or(ib.GetAddress(), n.GetAddress()), port: ib.GetPort(), weight: 1})
		}
	}
	if len(groups) == 0 {
		return out, nil // nothing to offer: no listener
	}
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.mesh, b.mesh), cmp.Compare(a.service, b.service), cmp.Compare(a.port, b.port))
	})
	inspector, err := typed(&tlsinspectorv3.TlsInspector{})
	if err != nil {
		return nil, err
	}
	tls, err := typed(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: in.CertPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: in.KeyPEM}},
		}},
	}})
	if err != nil {
		return nil, err
	}
	l := &listenerv3.Listener{
		Name:    IngressListener,
		Address: socketAddress(in.Address, in.Port),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: inspector}}},
	}
	for _, k := range keys {
		name := IngressCluster(k.mesh, k.service, k.port)
		f := tcpProxy(name, name)
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{SNI(k.mesh, k.service, k.port)}},
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tls}},
			Filters: []*listenerv3.Filter{f},
		})
		ws := groups[k]
		sortWeighted(ws)
		out[typeCDS] = append(out[typeCDS], edsCluster(name))
		out[typeEDS] = append(out[typeEDS], newLoadAssignment(name, appendLocality(nil, in.Zone, 0, ws)))
	}
	out[typeLDS] = []types.Resource{l}
	return out, nil
}
