package transparentproxy

import (
	"net/netip"
	"testing"
)

// HasIPv6 looks at the caller's namespace: loopback (::1) and link-local
// addresses are not IPv6 a pod's traffic uses; a global or unique-local
// address is.
func TestHasIPv6(t *testing.T) {
	requireNetnsTools(t)
	ns := newNetns(t, "v6")
	run(t, "ip", "-n", ns, "link", "add", "v6a", "type", "veth", "peer", "name", "v6b")
	run(t, "ip", "-n", ns, "link", "set", "v6a", "up")
	run(t, "ip", "-n", ns, "addr", "add", "fe80::7/64", "dev", "v6a")
	run(t, "ip", "-n", ns, "addr", "add", "10.1.2.3/24", "dev", "v6a")
	check := func(want bool, wantAddr string) {
		t.Helper()
		var has bool
		var addr netip.Addr
		var err error
		inNetns(t, ns, func() { has, addr, err = HasIPv6() })
		if err != nil || has != want || (want && addr.String() != wantAddr) {
			t.Errorf("HasIPv6 = %v %v %v, want %v %s", has, addr, err, want, wantAddr)
		}
	}
	check(false, "") // loopback, link-local and IPv4 only
	run(t, "ip", "-n", ns, "addr", "add", "fd00:250::7/64", "dev", "v6a", "nodad")
	check(true, "fd00:250::7")
}
