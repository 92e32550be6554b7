package xds

import (
	"cmp"
	"iter"
	"net/netip"
)

// Outbound listeners take over, for an Envoy proxy (a gateway or a
// sidecar), the connections its workload makes to a service: the virtual
// outbound listener hands each redirected connection to the listener of
// its original destination. The one rule of which exist, for both
// builders (Generate and meshConfig):
//
//   - each port of a service (each of its clusters) with a VIP gets a
//     listener on VIP:port, named "outbound:<vip>:<port>";
//   - each address a service has of its own (Input.ServiceAddresses: a
//     Kubernetes Service's ClusterIP:port, where service-upstream makes an
//     ingress controller send) gets a listener named
//     "outbound-ip:<address>:<port>" routing to the service's cluster
//     with the lowest port (a service has one, unless its instances
//     serve it on different ports). A service without a cluster (no
//     instance anywhere) gets none, as for VIPs: the connection passes
//     through. An address that is not a unicast IP with a port, or on
//     which a VIP listener already is, gets none.

// outbound is one outbound listener: where it takes connections and the
// cluster it routes them to.
type outbound struct {
	addr    netip.AddrPort
	cluster string
	// port is the cluster's port: of several clusters of a service, the
	// lowest takes its addresses' listeners.
	port uint32
	vip  bool
}

// AddressListener names the outbound listener on a service's own address.
func AddressListener(addr netip.AddrPort) string { return "outbound-ip:" + addr.String() }

// VIPListener names the outbound listener on a service's VIP and port.
func VIPListener(vip netip.Addr, port uint32) string {
	return "outbound:" + netip.AddrPortFrom(vip, uint16(port)).String()
}

// outbounds returns the outbound listeners, by name, of the clusters
// (name → service and port) given the services' VIPs and own addresses.
func outbounds(clusters iter.Seq2[string, clusterID], vips map[string]netip.Addr, addrs map[string][]netip.AddrPort) map[string]outbound {
	out := map[string]outbound{}
	// add keeps, of two candidates for one listener, the one with the
	// lower cluster port, then cluster name: the same whatever the order
	// clusters come in.
	add := func(name string, o outbound) {
		if have, ok := out[name]; ok && cmp.Or(cmp.Compare(have.port, o.port), cmp.Compare(have.cluster, o.cluster)) <= 0 {
			return
		}
		out[name] = o
	}
	for name, id := range clusters {
		if vip, ok := vips[id.service]; ok {
			add(VIPListener(vip, id.port), outbound{addr: netip.AddrPortFrom(vip, uint16(id.port)), cluster: name, port: id.port, vip: true})
		}
		for _, a := range addrs[id.service] {
			if a, ok := usableAddress(a); ok {
				add(AddressListener(a), outbound{addr: a, cluster: name, port: id.port})
			}
		}
	}
	if len(addrs) > 0 {
		// Envoy refuses two listeners on one address: the VIP's stays.
		onVIP := map[netip.AddrPort]bool{}
		for _, o := range out {
			if o.vip {
				onVIP[o.addr] = true
			}
		}
		for name, o := range out {
			if !o.vip && onVIP[o.addr] {
				delete(out, name)
			}
		}
	}
	return out
}

// usableAddress is a, IPv4 unmapped from IPv6, when it can take a
// service's connections: a unicast IP without a zone, and a port. A
// wildcard address would take every connection to its port.
func usableAddress(a netip.AddrPort) (netip.AddrPort, bool) {
	ip := a.Addr().Unmap()
	if !ip.IsGlobalUnicast() || ip.Zone() != "" || a.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, a.Port()), true
}
