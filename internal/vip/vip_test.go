package vip

import (
	"net/netip"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
)

var cidr = netip.MustParsePrefix(DefaultCIDR)

func TestProposalsAreDeterministicAndInRange(t *testing.T) {
	a, err := Propose(cidr, "default", "backend", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Propose(cidr, "default", "backend", map[netip.Addr]bool{})
	if a != b || !cidr.Contains(a) {
		t.Fatalf("proposals %s and %s: want equal and inside %s", a, b, cidr)
	}
	other, _ := Propose(cidr, "other", "backend", nil)
	if other == a {
		t.Errorf("two meshes got the same proposal %s", a)
	}
	next, _ := Propose(cidr, "default", "backend", map[netip.Addr]bool{a: true})
	if next == a || !cidr.Contains(next) {
		t.Errorf("a taken proposal was not skipped: %s", next)
	}
}

func TestASmallRangeFillsUpWithAClearError(t *testing.T) {
	small := netip.MustParsePrefix("10.0.0.0/30") // two usable addresses
	taken := map[netip.Addr]bool{}
	for _, s := range []string{"a", "b"} {
		addr, err := Propose(small, "m", s, taken)
		if err != nil {
			t.Fatal(err)
		}
		if addr == small.Addr() || addr == netip.MustParseAddr("10.0.0.3") {
			t.Errorf("handed out the network or broadcast address %s", addr)
		}
		taken[addr] = true
	}
	if _, err := Propose(small, "m", "c", taken); err != ErrFull {
		t.Fatalf("third service in a /30: %v, want ErrFull", err)
	}
}

func TestReconcileKeepsReleasesAfterCooldownAndNeverReusesEarly(t *testing.T) {
	now := time.Now()
	cool := time.Hour
	t1, changed, err := Reconcile(nil, "default", map[string]bool{"backend": true, "web": true}, cidr, netip.Prefix{}, now, cool)
	if err != nil || !changed || len(t1.Entries) != 2 {
		t.Fatalf("first allocation: %v %v %v", t1, changed, err)
	}
	vipOf := func(tab *v1alpha1.VIPTable, s string) string {
		for _, e := range tab.GetEntries() {
			if e.GetService() == s {
				return e.GetVip()
			}
		}
		return ""
	}
	backend := vipOf(t1, "backend")

	same, changed, _ := Reconcile(t1, "default", map[string]bool{"backend": true, "web": true}, cidr, netip.Prefix{}, now.Add(time.Minute), cool)
	if changed || vipOf(same, "backend") != backend {
		t.Fatalf("an unchanged reconcile changed the table")
	}
	gone, changed, _ := Reconcile(t1, "default", map[string]bool{"web": true}, cidr, netip.Prefix{}, now.Add(time.Minute), cool)
	if !changed || vipOf(gone, "backend") != backend {
		t.Fatalf("backend must keep its VIP while cooling down: %v", gone)
	}
	// Within the cool-down, a new service never gets backend's VIP, even if
	// it hashes onto it.
	back, _, _ := Reconcile(gone, "default", map[string]bool{"web": true, "backend": true}, cidr, netip.Prefix{}, now.Add(30*time.Minute), cool)
	if vipOf(back, "backend") != backend {
		t.Fatalf("backend came back within the cool-down with another VIP: %s, want %s", vipOf(back, "backend"), backend)
	}
	released, changed, _ := Reconcile(gone, "default", map[string]bool{"web": true}, cidr, netip.Prefix{}, now.Add(2*time.Hour), cool)
	if !changed || vipOf(released, "backend") != "" {
		t.Fatalf("backend not released after the cool-down: %v", released)
	}
}

func TestIPv6VIPsWhenARangeIsGiven(t *testing.T) {
	v6 := netip.MustParsePrefix("fd00:a7::/64")
	tab, _, err := Reconcile(nil, "default", map[string]bool{"backend": true}, cidr, v6, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a6, err := netip.ParseAddr(tab.GetEntries()[0].GetVip6())
	if err != nil || !v6.Contains(a6) {
		t.Fatalf("IPv6 VIP %q not in %s", tab.GetEntries()[0].GetVip6(), v6)
	}
	again, changed, _ := Reconcile(tab, "default", map[string]bool{"backend": true}, cidr, v6, time.Now(), time.Hour)
	if changed || again.GetEntries()[0].GetVip6() != a6.String() {
		t.Fatalf("IPv6 VIP not stable: %v", again)
	}
}
