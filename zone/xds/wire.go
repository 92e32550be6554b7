package xds

import (
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// The filter configurations written in wire form below, registered
	// for JSON rendering and validation of the Anys holding them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Endpoints are most of what a gateway is sent (1,000 services × 10
// endpoints are 10,000 endpoints against 1,000 clusters and listeners), and
// as Go messages each endpoint is seven of them, ~420 bytes to allocate and
// for the garbage collector to scan. A ClusterLoadAssignment is therefore
// built with its endpoints already in wire form, ~25 bytes each, kept as
// the message's unknown fields: protobuf marshals those verbatim, so what
// proxies receive is the same as from the full messages, and a
// configuration is marshalled once per version as before. Whatever reads
// the endpoints in this process (JSON rendering, validation, tests) works on
// expand(r), which decodes them into ordinary fields.

// Field numbers of the messages written here (envoy.config.endpoint.v3 and
// envoy.config.core.v3; a test checks the encoding against the messages).
const (
	claEndpoints         = 2 // ClusterLoadAssignment.endpoints
	localityLocality     = 1 // LocalityLbEndpoints.locality
	localityLbEndpoints  = 2 // LocalityLbEndpoints.lb_endpoints
	localityWeight       = 3 // LocalityLbEndpoints.load_balancing_weight
	localityPriority     = 5 // LocalityLbEndpoints.priority
	localityZone         = 2 // Locality.zone
	lbEndpointEndpoint   = 1 // LbEndpoint.endpoint
	lbEndpointMetadata   = 3 // LbEndpoint.metadata
	lbEndpointWeight     = 4 // LbEndpoint.load_balancing_weight
	endpointAddress      = 1 // Endpoint.address
	addressSocketAddress = 1 // Address.socket_address
	socketAddressAddress = 2 // SocketAddress.address
	socketAddressPort    = 3 // SocketAddress.port_value
	uint32Value          = 1 // google.protobuf.UInt32Value.value
)

// ingressMetadataWire is ingressMetadata encoded once.
var ingressMetadataWire = func() []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ingressMetadata)
	if err != nil {
		panic(err) // a fixed message
	}
	return b
}()

// appendUint32Value appends a google.protobuf.UInt32Value field.
func appendUint32Value(b []byte, num protowire.Number, v uint32) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	if v == 0 {
		return protowire.AppendVarint(b, 0) // an empty wrapper means 0
	}
	b = protowire.AppendVarint(b, uint64(1+protowire.SizeVarint(uint64(v))))
	b = protowire.AppendTag(b, uint32Value, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func sizeUint32Value(v uint32) int {
	inner := 0
	if v != 0 {
		inner = 1 + protowire.SizeVarint(uint64(v))
	}
	return 1 + protowire.SizeBytes(inner)
}

// appendLbEndpoint appends one LbEndpoint as a field of a LocalityLbEndpoints.
func appendLbEndpoint(b []byte, w weighted) []byte {
	// port_value is in a oneof: written even when 0.
	sa := 1 + protowire.SizeBytes(len(w.addr)) + 1 + protowire.SizeVarint(uint64(w.port))
	addr := 1 + protowire.SizeBytes(sa)
	ep := 1 + protowire.SizeBytes(addr)
	lb := 1 + protowire.SizeBytes(ep)
	if w.ingress {
		lb += 1 + protowire.SizeBytes(len(ingressMetadataWire))
	}
	if w.weight != 1 { // unset means 1
		lb += sizeUint32Value(w.weight)
	}
	b = protowire.AppendTag(b, localityLbEndpoints, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(lb))
	b = protowire.AppendTag(b, lbEndpointEndpoint, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(ep))
	b = protowire.AppendTag(b, endpointAddress, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(addr))
	b = protowire.AppendTag(b, addressSocketAddress, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sa))
	b = protowire.AppendTag(b, socketAddressAddress, protowire.BytesType)
	b = protowire.AppendString(b, w.addr)
	b = protowire.AppendTag(b, socketAddressPort, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(w.port))
	if w.ingress {
		b = protowire.AppendTag(b, lbEndpointMetadata, protowire.BytesType)
		b = protowire.AppendBytes(b, ingressMetadataWire)
	}
	if w.weight != 1 {
		b = appendUint32Value(b, lbEndpointWeight, w.weight)
	}
	return b
}

// appendLocality appends one LocalityLbEndpoints as a field of a
// ClusterLoadAssignment: the endpoints of one zone at one priority,
// weighted by their total weight.
func appendLocality(b []byte, zone string, priority uint32, ws []weighted) []byte {
	b, at := openField(b, claEndpoints)
	b = protowire.AppendTag(b, localityLocality, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len(zone))))
	b = protowire.AppendTag(b, localityZone, protowire.BytesType)
	b = protowire.AppendString(b, zone)
	total := uint32(0)
	for _, w := range ws {
		b = appendLbEndpoint(b, w)
		total += w.weight
	}
	b = appendUint32Value(b, localityWeight, total)
	if priority != 0 {
		b = protowire.AppendTag(b, localityPriority, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(priority))
	}
	return closeField(b, at)
}

// openField starts a length-delimited field whose length is not known yet:
// it reserves the longest length prefix; closeField(b, at) writes the
// length and moves the content up if the prefix is shorter.
func openField(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return append(b, 0, 0, 0, 0, 0), len(b)
}

func closeField(b []byte, at int) []byte {
	start := at + 5
	prefix := protowire.AppendVarint(b[at:at], uint64(len(b)-start)) // over the reserved bytes
	if len(prefix) < 5 {
		copy(b[at+len(prefix):], b[start:])
		b = b[:len(b)-(5-len(prefix))]
	}
	return b
}

func appendStringField(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// expand returns r with any endpoints kept in wire form decoded into
// ordinary fields (r itself when there are none). Generated resources are
// never modified, so r is not changed.
func expand(r types.Resource) types.Resource {
	m := r.ProtoReflect()
	if len(m.GetUnknown()) == 0 {
		return r
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return r
	}
	out := m.New().Interface()
	if err := proto.Unmarshal(b, out); err != nil {
		return r
	}
	return out
}

// newLoadAssignment is a ClusterLoadAssignment holding endpoints, the
// LocalityLbEndpoints fields in wire form.
func newLoadAssignment(name string, endpoints []byte) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	if len(endpoints) > 0 {
		cla.ProtoReflect().SetUnknown(endpoints)
	}
	return cla
}

// Listeners carry their filters' configuration in Any fields: a gateway's
// thousands of them are written directly in wire form too, rather than
// built as messages and marshalled through reflection.

// Type URLs of the filter configurations written here.
const (
	typeURLTCPProxy = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	typeURLHCM      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeURLRouter   = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
)

// tcpProxyWire is a TcpProxy {stat_prefix, cluster}.
func tcpProxyWire(statPrefix, cluster string) *anypb.Any {
	b := make([]byte, 0, len(statPrefix)+len(cluster)+6)
	b = appendStringField(b, 1, statPrefix) // stat_prefix
	b = appendStringField(b, 2, cluster)    // cluster
	return &anypb.Any{TypeUrl: typeURLTCPProxy, Value: b}
}

// routerAnyWire is the router filter's Any, as a field value.
var routerAnyWire = appendStringField(nil, 1, typeURLRouter) // type_url; the Router is empty

// hcmWire is the HttpConnectionManager of a gRPC client's API listener: a
// route configuration inline with one virtual host for every domain and
// one route sending everything to cluster, and the router filter.
func hcmWire(name, cluster string) *anypb.Any {
	b := make([]byte, 0, 3*len(name)+len(cluster)+len(routerAnyWire)+64)
	b = appendStringField(b, 2, name) // HttpConnectionManager.stat_prefix
	b, rc := openField(b, 4)          // .route_config
	b = appendStringField(b, 1, name) // RouteConfiguration.name
	b, vh := openField(b, 2)          // .virtual_hosts
	b = appendStringField(b, 1, name) // VirtualHost.name
	b = appendStringField(b, 2, "*")  // .domains
	b, rt := openField(b, 3)          // .routes
	b, m := openField(b, 1)           // Route.match
	b = appendStringField(b, 1, "")   // RouteMatch.prefix (a oneof: written when empty)
	b = closeField(b, m)
	b, ra := openField(b, 2)             // Route.route
	b = appendStringField(b, 1, cluster) // RouteAction.cluster
	b = closeField(b, ra)
	b = closeField(b, rt)
	b = closeField(b, vh)
	b = closeField(b, rc)
	b, hf := openField(b, 5)                                 // .http_filters
	b = appendStringField(b, 1, "envoy.filters.http.router") // HttpFilter.name
	b = protowire.AppendTag(b, 4, protowire.BytesType)       // .typed_config
	b = protowire.AppendBytes(b, routerAnyWire)
	b = closeField(b, hf)
	return &anypb.Any{TypeUrl: typeURLHCM, Value: b}
}

const typeURLUpstreamTLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"

// upstreamTLSWire is an UpstreamTlsContext naming sni.
func upstreamTLSWire(sni string) *anypb.Any {
	return &anypb.Any{TypeUrl: typeURLUpstreamTLS, Value: appendStringField(make([]byte, 0, len(sni)+3), 2, sni)} // sni
}

// outboundListenerWire is the rest of an outbound listener named
// statPrefix: its address (not bound: bind_to_port false) and one filter
// chain proxying TCP to cluster.
func outboundListenerWire(addr string, port uint32, statPrefix, cluster string) []byte {
	b := make([]byte, 0, len(addr)+2*len(statPrefix)+len(cluster)+len(typeURLTCPProxy)+64)
	b, a := openField(b, 2)           // Listener.address
	b, sa := openField(b, 1)          // Address.socket_address
	b = appendStringField(b, 2, addr) // SocketAddress.address
	b = protowire.AppendTag(b, socketAddressPort, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(port))
	b = closeField(b, sa)
	b = closeField(b, a)
	b, fc := openField(b, 3)                                       // Listener.filter_chains
	b, f := openField(b, 3)                                        // FilterChain.filters
	b = appendStringField(b, 1, "envoy.filters.network.tcp_proxy") // Filter.name
	b, tc := openField(b, 4)                                       // Filter.typed_config
	b = appendStringField(b, 1, typeURLTCPProxy)                   // Any.type_url
	b, v := openField(b, 2)                                        // Any.value
	b = appendStringField(b, 1, statPrefix)                        // TcpProxy.stat_prefix
	b = appendStringField(b, 2, cluster)                           // TcpProxy.cluster
	b = closeField(b, v)
	b = closeField(b, tc)
	b = closeField(b, f)
	b = closeField(b, fc)
	b = protowire.AppendTag(b, 26, protowire.BytesType) // Listener.bind_to_port: BoolValue false (empty)
	return protowire.AppendVarint(b, 0)
}
