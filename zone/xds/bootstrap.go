package xds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// A proxy needs a bootstrap naming the zone's xDS server and its node.id
// before it can ask for anything: the zone serves it, for Envoy and for
// grpc-go's xDS client, so nobody writes one by hand.

// XDSClusterName is the Envoy bootstrap's static cluster of the zone's xDS
// server (or, in a sidecar, of the relay to it).
const XDSClusterName = "atoll-xds"

// EnvoyAdminPort is where a bootstrapped Envoy's admin interface listens,
// on loopback.
const EnvoyAdminPort = 9901

// maxPipePath is the longest Unix socket path Linux accepts: sun_path
// holds 108 bytes, the terminating NUL included.
const maxPipePath = 107

// EnvoyBootstrap is the bootstrap of an Envoy with node.id nodeID and its
// token fetching everything over ADS from the xDS server at xds
// (host:port; the host may be a name, resolved by Envoy). With caPEM, the
// connection is TLS, verified against that CA and the host.
func EnvoyBootstrap(nodeID, cluster, xds, token string, caPEM []byte) (*bootstrapv3.Bootstrap, error) {
	host, port, err := splitXDSAddress(xds)
	if err != nil {
		return nil, err
	}
	var transport *corev3.TransportSocket
	if caPEM != nil {
		if transport, err = xdsTLS(host, caPEM); err != nil {
			return nil, err
		}
	}
	discovery := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(host); err != nil {
		discovery = clusterv3.Cluster_STRICT_DNS
	}
	node := &corev3.Node{Id: nodeID, Cluster: cluster, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		TokenMetadataKey: structpb.NewStringValue(token)}}}
	return envoyBootstrap(node, EnvoyAdminPort, discovery, socketAddress(host, uint32(port)), transport)
}

// SidecarBootstrap is the bootstrap of the Envoy that `atoll sidecar` runs
// in an injected pod: node.id nodeID, node.cluster cluster, admin on
// 127.0.0.1:adminPort, everything over delta ADS from the sidecar's xDS
// relay listening on the Unix socket pipe (an absolute path). The relay
// presents the pod's credential and speaks TLS to the zone, so the
// bootstrap carries neither token nor CA.
func SidecarBootstrap(nodeID, cluster, pipe string, adminPort int) (*bootstrapv3.Bootstrap, error) {
	switch {
	case nodeID == "":
		return nil, fmt.Errorf("sidecar bootstrap: the node id is empty: use <mesh>.<dataplane name>")
	case !filepath.IsAbs(pipe):
		return nil, fmt.Errorf("sidecar bootstrap: xDS socket %q is not an absolute path", pipe)
	case len(pipe) > maxPipePath:
		return nil, fmt.Errorf("sidecar bootstrap: xDS socket %q is %d bytes long, longer than a Unix socket path may be (%d): use a shorter directory", pipe, len(pipe), maxPipePath)
	case adminPort < 1 || adminPort > 65535:
		return nil, fmt.Errorf("sidecar bootstrap: admin port %d is not a port: use 1-65535", adminPort)
	}
	addr := &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: pipe}}}
	return envoyBootstrap(&corev3.Node{Id: nodeID, Cluster: cluster}, uint32(adminPort), clusterv3.Cluster_STATIC, addr, nil)
}

// envoyBootstrap is what every bootstrap of an Envoy has: node, admin on
// loopback, and LDS and CDS over delta ADS from the one static cluster
// XDSClusterName (HTTP/2) whose endpoint is xds.
func envoyBootstrap(node *corev3.Node, adminPort uint32, discovery clusterv3.Cluster_DiscoveryType, xds *corev3.Address, transport *corev3.TransportSocket) (*bootstrapv3.Bootstrap, error) {
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})
	if err != nil {
		return nil, err
	}
	ads := func() *corev3.ConfigSource {
		return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}, ResourceApiVersion: corev3.ApiVersion_V3}
	}
	return &bootstrapv3.Bootstrap{
		Node:  node,
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", adminPort)},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_DELTA_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName}}}},
				SetNodeOnFirstMessageOnly: true,
			},
			CdsConfig: ads(),
			LdsConfig: ads(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name:                          XDSClusterName,
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
			ConnectTimeout:                durationpb.New(5 * time.Second),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
			TransportSocket:               transport,
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: XDSClusterName, Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: xds,
				}}}},
			}}},
		}}},
	}, nil
}

// EnvoyBootstrapJSON is b as indented JSON, laid out the same way every
// time (protojson varies its whitespace on purpose).
func EnvoyBootstrapJSON(b *bootstrapv3.Bootstrap) ([]byte, error) {
	js, err := protojson.Marshal(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, js, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// GRPCBootstrap is the bootstrap of grpc-go's xDS client (GRPC_XDS_BOOTSTRAP)
// with node.id nodeID and its token, and the xDS server at xds (host:port).
// With caFile (the path of the CA on the client's machine) the connection
// is TLS, verified against that CA.
//
// With tokenFile (the path, on the client's machine, of a pod's projected
// ServiceAccount token) the client presents that token on its stream as
// "authorization: Bearer <token>", read again as the kubelet rotates it
// (grpc-go's jwt_token_file call credentials, gRFC A97), in place of the
// zone's token: the proxy of a pod's Dataplane authenticates so
// (credentials.go). grpc-go sends call credentials only over TLS, so
// tokenFile needs caFile.
func GRPCBootstrap(nodeID, xds, token, caFile, tokenFile string) ([]byte, error) {
	if _, _, err := splitXDSAddress(xds); err != nil {
		return nil, err
	}
	if tokenFile != "" && caFile == "" {
		return nil, fmt.Errorf("token-file: grpc-go sends a token file's token only over TLS, so serve xDS over TLS (--xds-tls) and give ca-file")
	}
	type creds struct {
		Type   string            `json:"type"`
		Config map[string]string `json:"config,omitempty"`
	}
	channel := creds{Type: "insecure"}
	if caFile != "" {
		channel = creds{Type: "tls", Config: map[string]string{"ca_certificate_file": caFile}}
	}
	type server struct {
		URI       string   `json:"server_uri"`
		Creds     []creds  `json:"channel_creds"`
		CallCreds []creds  `json:"call_creds,omitempty"`
		Features  []string `json:"server_features"`
	}
	type node struct {
		ID       string            `json:"id"`
		Metadata map[string]string `json:"metadata,omitempty"`
	}
	srv := server{URI: xds, Creds: []creds{channel}, Features: []string{"xds_v3"}}
	n := node{ID: nodeID}
	if tokenFile != "" {
		srv.CallCreds = []creds{{Type: "jwt_token_file", Config: map[string]string{"jwt_token_file": tokenFile}}}
	} else {
		n.Metadata = map[string]string{TokenMetadataKey: token}
	}
	b, err := json.MarshalIndent(struct {
		Servers []server `json:"xds_servers"`
		Node    node     `json:"node"`
	}{Servers: []server{srv}, Node: n}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func splitXDSAddress(xds string) (string, uint16, error) {
	host, p, err := net.SplitHostPort(xds)
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("xDS address %q: use host:port, e.g. 10.0.0.5:5678", xds)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("xDS address %q: the port must be a number from 1 to 65535", xds)
	}
	return host, uint16(port), nil
}

// xdsAddressFor is the address a proxy reaches this server at: ?xds=
// when given, else the server's own address, with an unspecified host
// (":5678", "0.0.0.0:5678") replaced by the host the request came to.
func (s *Server) xdsAddressFor(r *http.Request) (string, error) {
	if a := r.URL.Query().Get("xds"); a != "" {
		if _, _, err := splitXDSAddress(a); err != nil {
			return "", err
		}
		return a, nil
	}
	addr := s.Addr()
	if addr == nil {
		return "", fmt.Errorf("the xDS server is not listening yet")
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return addr.String(), nil
	}
	if !ap.Addr().IsUnspecified() {
		return ap.String(), nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(int(ap.Port()))), nil
}

// BootstrapHandler serves GET /meshes/{mesh}/dataplanes/{name}/bootstrap:
// ?kind=envoy (default) or proxyless (grpc-go's bootstrap; "grpc" too),
// ?xds=host:port to name the xDS server as the proxy reaches it.
func (s *Server) BootstrapHandler(w http.ResponseWriter, r *http.Request) {
	mesh, name := r.PathValue("mesh"), r.PathValue("name")
	dp, err := s.cfg.Store.Get(r.Context(), resource.Key{Type: resource.DataplaneType, Mesh: mesh, Name: name})
	if err != nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf(
			"zone %s has no Dataplane %q in mesh %q: register it with this zone first (its proxy is refused until then)", s.cfg.Zone, name, mesh)})
		return
	}
	s.writeBootstrap(w, r, mesh+"."+name, mesh, dp)
}

// IngressBootstrapHandler serves GET /zoneingresses/{name}/bootstrap: the
// Envoy bootstrap of this zone's ingress (node.id = the zone's name).
func (s *Server) IngressBootstrapHandler(w http.ResponseWriter, r *http.Request) {
	if name := r.PathValue("name"); name != s.cfg.Zone {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf(
			"this is zone %s: ask zone %s's own API for its ingress's bootstrap", s.cfg.Zone, name)})
		return
	}
	s.writeBootstrap(w, r, s.cfg.Zone, "ingress", nil)
}

// writeBootstrap writes the bootstrap of node nodeID: dp's proxy, or the
// ingress's (dp nil), which is an Envoy.
func (s *Server) writeBootstrap(w http.ResponseWriter, r *http.Request, nodeID, cluster string, dp *resource.Resource) {
	grpcAllowed := dp != nil
	bad := func(err error) {
		apiserver.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	xds, err := s.xdsAddressFor(r)
	if err != nil {
		bad(err)
		return
	}
	var body []byte
	ca := s.caPEM()
	switch kind := r.URL.Query().Get("kind"); {
	case kind == "" || kind == "envoy":
		b, err := EnvoyBootstrap(nodeID, cluster, xds, s.Token(nodeID), ca)
		if err != nil {
			bad(err)
			return
		}
		if body, err = EnvoyBootstrapJSON(b); err != nil {
			apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
	case (kind == "proxyless" || kind == "grpc") && grpcAllowed:
		caFile, tokenFile := r.URL.Query().Get("ca-file"), r.URL.Query().Get("token-file")
		switch {
		case ca != nil && !filepath.IsAbs(caFile):
			bad(fmt.Errorf("this zone serves xDS over TLS: give ca-file, the absolute path where the client finds the CA (GET /xds-ca.pem; atollctl bootstrap --ca-file writes it)"))
			return
		case ca == nil && caFile != "":
			bad(fmt.Errorf("ca-file: this zone serves xDS in plaintext (xds.tls is off)"))
			return
		case tokenFile != "" && !filepath.IsAbs(tokenFile):
			bad(fmt.Errorf("token-file %q: give the absolute path of the pod's projected ServiceAccount token (audience %s) as the client sees it", tokenFile, s.proxyAudience()))
			return
		}
		covered := s.cfg.ProxyAuthenticator != nil && s.cfg.ProxyAuthenticator.Covers(dp)
		switch {
		case covered && ca == nil:
			bad(fmt.Errorf("Dataplane %s is a pod's: its proxy presents the pod's projected ServiceAccount token (audience %s), which grpc-go sends only over TLS, and this zone serves xDS in plaintext: turn on xDS TLS (--xds-tls)", nodeID, s.proxyAudience()))
			return
		case covered && tokenFile == "":
			bad(fmt.Errorf("Dataplane %s is a pod's: its proxy presents the pod's projected ServiceAccount token (audience %s), not the zone's token; give token-file, the absolute path of that token in the pod (atollctl bootstrap --token-file)", nodeID, s.proxyAudience()))
			return
		case !covered && tokenFile != "":
			bad(fmt.Errorf("token-file: Dataplane %s is not a pod's, so its proxy presents the zone's token (in the bootstrap); leave token-file out", nodeID))
			return
		}
		token := s.Token(nodeID)
		if tokenFile != "" {
			token = ""
		}
		if body, err = GRPCBootstrap(nodeID, xds, token, caFile, tokenFile); err != nil {
			bad(err)
			return
		}
	default:
		use := "envoy or proxyless"
		if !grpcAllowed {
			use = "envoy (the ingress is an Envoy)"
		}
		bad(fmt.Errorf("kind %q: use %s", kind, use))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// xdsTLS is the transport socket of Envoy's connection to the xDS server:
// TLS verified against caPEM, the server's certificate naming host.
func xdsTLS(host string, caPEM []byte) (*corev3.TransportSocket, error) {
	san := &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: host}}}
	sni := host
	if _, err := netip.ParseAddr(host); err == nil {
		san.SanType, sni = tlsv3.SubjectAltNameMatcher_IP_ADDRESS, ""
	}
	ctx, err := anypb.New(&tlsv3.UpstreamTlsContext{Sni: sni, CommonTlsContext: &tlsv3.CommonTlsContext{
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa:                 &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{san},
		}},
	}})
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: ctx}}, nil
}

// CAHandler serves GET /xds-ca.pem: the CA of the xDS server's certificate.
func (s *Server) CAHandler(w http.ResponseWriter, r *http.Request) {
	ca := s.caPEM()
	if ca == nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "this zone serves xDS in plaintext (xds.tls is off)"})
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(ca)
}

// caPEM is the CA of the xDS server's certificate; nil: plaintext.
func (s *Server) caPEM() []byte {
	if s.cfg.CA == nil {
		return nil
	}
	return s.cfg.CA()
}

// proxyAudience names the audience of the tokens the server's
// ProxyAuthenticator checks, for messages.
func (s *Server) proxyAudience() string {
	if a, ok := s.cfg.ProxyAuthenticator.(interface{ Audience() string }); ok {
		return a.Audience()
	}
	return "that the zone checks"
}
