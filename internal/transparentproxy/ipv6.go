package transparentproxy

import (
	"fmt"
	"net"
	"net/netip"
)

// HasIPv6 reports whether the network namespace the caller runs in has an
// IPv6 address other than loopback and link-local — a pod of a dual-stack
// or IPv6 cluster — and returns the first one. The init container installs
// the IPv6 rules, and the sidecar gives Envoy an IPv6 outbound listener,
// exactly when it does: IPv6 rules without that listener would break the
// pod's IPv6 traffic, and where the pod has no IPv6 there is nothing to
// redirect.
func HasIPv6() (bool, netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, netip.Addr{}, fmt.Errorf("listing the namespace's addresses: %w", err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.Is6() || ip.Is4In6() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			continue
		}
		return true, ip, nil
	}
	return false, netip.Addr{}, nil
}
