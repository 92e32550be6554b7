package xds

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestEnvoyBootstrap(t *testing.T) {
	for _, c := range []struct {
		xds  string
		want clusterv3.Cluster_DiscoveryType
	}{
		{"10.0.0.5:5678", clusterv3.Cluster_STATIC},
		{"[fd00::5]:5678", clusterv3.Cluster_STATIC},
		{"zone-1.example:5678", clusterv3.Cluster_STRICT_DNS},
	} {
		b, err := EnvoyBootstrap("default.kong", "default", c.xds, "tok", nil)
		if err != nil {
			t.Fatalf("%s: %v", c.xds, err)
		}
		if err := b.ValidateAll(); err != nil {
			t.Errorf("%s: %v", c.xds, err)
		}
		xds := b.GetStaticResources().GetClusters()[0]
		sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		host, _, _ := net.SplitHostPort(c.xds)
		if b.GetNode().GetId() != "default.kong" || b.GetNode().GetMetadata().GetFields()[TokenMetadataKey].GetStringValue() != "tok" || xds.GetType() != c.want || sa.GetAddress() != host || sa.GetPortValue() != 5678 ||
			b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != xds.GetName() {
			t.Errorf("%s: %v", c.xds, b)
		}
	}
	b, err := EnvoyBootstrap("default.kong", "default", "10.0.0.5:5678", "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := EnvoyBootstrapJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "envoy-bootstrap", js)
	// What is served reads back as the same bootstrap.
	var back bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &back); err != nil || !proto.Equal(&back, b) {
		t.Errorf("the JSON does not read back: %v", err)
	}
}

func TestBootstrapRefusesBadXDSAddresses(t *testing.T) {
	for _, xds := range []string{"", "10.0.0.5", ":5678", "10.0.0.5:0", "10.0.0.5:65536", "10.0.0.5:x"} {
		if _, err := EnvoyBootstrap("default.kong", "default", xds, "tok", nil); err == nil || !strings.Contains(err.Error(), "xDS address") {
			t.Errorf("Envoy bootstrap for %q: %v, want an error naming the address", xds, err)
		}
		if _, err := GRPCBootstrap("default.kong", xds, "tok", "", ""); err == nil {
			t.Errorf("gRPC bootstrap for %q: no error", xds)
		}
	}
}

func TestGRPCBootstrap(t *testing.T) {
	b, err := GRPCBootstrap("default.kong", "10.0.0.5:5678", "tok", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Servers []struct {
			URI   string `json:"server_uri"`
			Creds []struct {
				Type string `json:"type"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
		Node struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"node"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Servers) != 1 || got.Servers[0].URI != "10.0.0.5:5678" || got.Servers[0].Creds[0].Type != "insecure" || got.Node.ID != "default.kong" || got.Node.Metadata[TokenMetadataKey] != "tok" {
		t.Errorf("%s", b)
	}
}

// The xDS server is named as it listens, an unspecified host replaced by
// the host the API request came to; ?xds= overrides.
func TestBootstrapNamesTheXDSServerAsReached(t *testing.T) {
	s := &Server{}
	for _, c := range []struct{ bound, host, query, want string }{
		{"10.0.0.5:5678", "api.example:5681", "", "10.0.0.5:5678"},
		{"0.0.0.0:5678", "zone-1.example:5681", "", "zone-1.example:5678"},
		{"[::]:5678", "[fd00::1]:5681", "", "[fd00::1]:5678"},
		{"0.0.0.0:5678", "zone-1.example:5681", "?xds=xds.example:15678", "xds.example:15678"},
	} {
		s.bound.Store(net.Addr(net.TCPAddrFromAddrPort(mustAddrPort(t, c.bound))))
		r := httptest.NewRequest("GET", "/x"+c.query, nil)
		r.Host = c.host
		got, err := s.xdsAddressFor(r)
		if err != nil || got != c.want {
			t.Errorf("bound %s, request to %s%s: %q %v, want %q", c.bound, c.host, c.query, got, err, c.want)
		}
	}
	r := httptest.NewRequest("GET", "/x?xds=nope", nil)
	if _, err := s.xdsAddressFor(r); err == nil {
		t.Error("?xds=nope accepted")
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// With the zone's CA, bootstraps connect over TLS and verify the server.
func TestBootstrapsOverTLS(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\nfixture\n-----END CERTIFICATE-----\n")
	for _, c := range []struct {
		xds, sni string
		san      tlsv3.SubjectAltNameMatcher_SanType
	}{
		{"10.0.0.5:5678", "", tlsv3.SubjectAltNameMatcher_IP_ADDRESS},
		{"zone-1.example:5678", "zone-1.example", tlsv3.SubjectAltNameMatcher_DNS},
	} {
		b, err := EnvoyBootstrap("default.kong", "default", c.xds, "tok", ca)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.ValidateAll(); err != nil {
			t.Errorf("%s: %v", c.xds, err)
		}
		var ctx tlsv3.UpstreamTlsContext
		if err := b.GetStaticResources().GetClusters()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatalf("%s: no TLS to the xDS server: %v", c.xds, err)
		}
		vc := ctx.GetCommonTlsContext().GetValidationContext()
		host, _, _ := net.SplitHostPort(c.xds)
		if string(vc.GetTrustedCa().GetInlineBytes()) != string(ca) || ctx.GetSni() != c.sni ||
			vc.GetMatchTypedSubjectAltNames()[0].GetSanType() != c.san || vc.GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != host {
			t.Errorf("%s: %v", c.xds, &ctx)
		}
	}
	b, err := GRPCBootstrap("default.kong", "10.0.0.5:5678", "tok", "/etc/atoll/xds-ca.pem", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"type": "tls"`) || !strings.Contains(string(b), `"ca_certificate_file": "/etc/atoll/xds-ca.pem"`) {
		t.Errorf("gRPC bootstrap over TLS:\n%s", b)
	}
}

// The sidecar's Envoy fetches LDS and CDS over delta ADS from the relay's
// Unix socket, with no token or CA of its own (the relay has them).
func TestSidecarBootstrap(t *testing.T) {
	b, err := SidecarBootstrap("default.kong-7d9-kong-abc", "default", "/var/run/atoll/xds.sock", 9902)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	xds := b.GetStaticResources().GetClusters()[0]
	ep := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
	ads := b.GetDynamicResources().GetAdsConfig()
	switch {
	case b.GetNode().GetId() != "default.kong-7d9-kong-abc" || b.GetNode().GetCluster() != "default":
		t.Errorf("node %v", b.GetNode())
	case b.GetNode().GetMetadata() != nil:
		t.Errorf("node metadata %v: the relay presents the credential, the bootstrap must not carry one", b.GetNode().GetMetadata())
	case ep.GetPipe().GetPath() != "/var/run/atoll/xds.sock":
		t.Errorf("xDS endpoint %v, want the pipe /var/run/atoll/xds.sock", ep)
	case xds.GetName() != XDSClusterName || xds.GetTransportSocket() != nil:
		t.Errorf("xDS cluster %v", xds)
	case b.GetAdmin().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.1" || b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 9902:
		t.Errorf("admin %v, want 127.0.0.1:9902", b.GetAdmin())
	case ads.GetApiType() != corev3.ApiConfigSource_DELTA_GRPC || ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != XDSClusterName ||
		b.GetDynamicResources().GetLdsConfig().GetAds() == nil || b.GetDynamicResources().GetCdsConfig().GetAds() == nil:
		t.Errorf("dynamic resources %v, want LDS and CDS over delta ADS from %s", b.GetDynamicResources(), XDSClusterName)
	}
	js, err := EnvoyBootstrapJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sidecar-bootstrap", js)
}

// A pod with IPv6 gets the IPv6 virtual outbound listener as a static
// listener of its bootstrap: the same filter chain as the zone's IPv4 one,
// on [::]:15001 (IPv6 only, so both bind the port), and still valid.
func TestSidecarBootstrapWithIPv6Outbound(t *testing.T) {
	b, err := SidecarBootstrap("default.kong-7d9-kong-abc", "default", "/var/run/atoll/xds.sock", 9901)
	if err != nil {
		t.Fatal(err)
	}
	b.StaticResources.Listeners = append(b.StaticResources.Listeners, VirtualOutboundIPv6())
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	l, v4 := b.GetStaticResources().GetListeners()[0], virtualOutbound()
	sa := l.GetAddress().GetSocketAddress()
	switch {
	case l.GetName() != VirtualOutboundIPv6Name || sa.GetAddress() != "::" || sa.GetPortValue() != OutboundPort || sa.GetIpv4Compat():
		t.Errorf("listener %s at %v, want %s at [::]:%d without IPv4", l.GetName(), sa, VirtualOutboundIPv6Name, OutboundPort)
	case !l.GetUseOriginalDst().GetValue():
		t.Error("the IPv6 outbound listener does not hand connections to their original destination's listener")
	case !proto.Equal(l.GetFilterChains()[0], v4.GetFilterChains()[0]):
		t.Errorf("filter chain %v, want the IPv4 one's %v", l.GetFilterChains(), v4.GetFilterChains())
	}
}

func TestSidecarBootstrapRefuses(t *testing.T) {
	long := "/" + strings.Repeat("d", 100) + "/xds.sock"
	for _, c := range []struct {
		node, pipe string
		admin      int
		want       string
	}{
		{"", "/run/xds.sock", 9901, "node id is empty"},
		{"default.a", "run/xds.sock", 9901, "not an absolute path"},
		{"default.a", long, 9901, "use a shorter directory"},
		{"default.a", "/run/xds.sock", 0, "admin port 0"},
		{"default.a", "/run/xds.sock", 65536, "admin port 65536"},
	} {
		if _, err := SidecarBootstrap(c.node, "default", c.pipe, c.admin); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q %d: %v, want an error containing %q", c.node, c.pipe, c.admin, err, c.want)
		}
	}
}
