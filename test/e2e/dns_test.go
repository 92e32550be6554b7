package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/internal/vip"
)

// resolve asks a zone's DNS server over network for name's A record and
// returns the address, or the rcode's name when there is none.
func resolve(t *testing.T, dnsAddr, network, name string) string {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, dnsAddr)
	if err != nil {
		return "error: " + err.Error()
	}
	if len(r.Answer) == 0 {
		return mdns.RcodeToString[r.Rcode]
	}
	return r.Answer[0].(*mdns.A).A.String()
}

func waitResolve(t *testing.T, dnsAddr, name, want string) {
	t.Helper()
	waitFor(t, syncWait, name+" → "+want, func() error {
		for _, network := range []string{"udp", "tcp"} {
			if got := resolve(t, dnsAddr, network, name); got != want {
				return fmt.Errorf("%s: got %s", network, got)
			}
		}
		return nil
	})
}

// vipOf returns a service's VIP in a control plane's GET /meshes/default/vips,
// and whether it is only the zone's proposal.
func vipOf(t *testing.T, apiURL, service string) (string, bool) {
	status, body := call(t, "GET", apiURL+"/meshes/default/vips", "")
	if status != 200 {
		return "", false
	}
	var l struct {
		Items []struct {
			Service  string `json:"service"`
			VIP      string `json:"vip"`
			Proposed bool   `json:"proposed"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &l)
	for _, it := range l.Items {
		if it.Service == service {
			return it.VIP, it.Proposed
		}
	}
	return "", false
}

func TestDNSAcrossZonesWithStableVIPs(t *testing.T) {
	kdsAddr := freePort(t)
	gdir := t.TempDir()
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	dns1, dns2 := freePort(t), freePort(t)
	z1dir := t.TempDir()
	z1 := startSyncedZone(t, "zone-1", z1dir, kdsAddr, g.caFile(), "--dns-addr", dns1)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, g.caFile(), "--dns-addr", dns2)
	applyFile(t, z2, "../sample/zone-2.yaml")

	// The global assigns the VIP; both zones answer with it.
	var vip string
	waitFor(t, syncWait, "the global's VIP for backend", func() error {
		if vip, _ = vipOf(t, g.apiURL, "backend"); vip == "" {
			return fmt.Errorf("no VIP yet")
		}
		return nil
	})
	if !strings.HasPrefix(vip, "24") {
		t.Errorf("VIP %s is not from 240.0.0.0/4", vip)
	}
	waitResolve(t, dns1, "backend.mesh", vip)
	waitResolve(t, dns2, "BACKEND.mesh", vip)
	if got := resolve(t, dns1, "udp", "nope.mesh"); got != "NXDOMAIN" {
		t.Errorf("nope.mesh: %s, want NXDOMAIN", got)
	}
	waitFor(t, syncWait, "zone-1 to hold the global's VIP for backend", func() error {
		if got, proposed := vipOf(t, z1.apiURL, "backend"); got != vip || proposed {
			return fmt.Errorf("zone-1's view of backend: %s (proposed %v), want the global's %s", got, proposed, vip)
		}
		return nil
	})
	if out, errOut, err := atollctl(t, "", "--api-url", z1.apiURL, "get", "vips"); err != nil || !strings.Contains(out, "backend   "+vip) {
		t.Errorf("atollctl get vips: %v %q %q", err, out, errOut)
	}

	// Stable across restarts of the global and of a zone.
	g.stop()
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	z1.stop()
	z1 = startSyncedZone(t, "zone-1", z1dir, kdsAddr, g.caFile(), "--dns-addr", dns1)
	waitResolve(t, dns1, "backend.mesh", vip)
	if got, _ := vipOf(t, g.apiURL, "backend"); got != vip {
		t.Errorf("the global's VIP changed across restarts: %s, want %s", got, vip)
	}

	// With the global down, a new service still resolves (the zone's own
	// proposal), and the global confirms the same VIP once back.
	g.stop()
	web := strings.NewReplacer("backend-1", "web-1", `"atoll.io/service":"backend"`, `"atoll.io/service":"web"`).Replace(backendJSON)
	if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/web-1", web); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	var proposal string
	waitFor(t, syncWait, "zone-1's proposal for web", func() error {
		got, proposed := vipOf(t, z1.apiURL, "web")
		if got == "" || !proposed {
			return fmt.Errorf("web: %q proposed %v", got, proposed)
		}
		proposal = got
		return nil
	})
	waitResolve(t, dns1, "web.mesh", proposal)
	waitResolve(t, dns1, "backend.mesh", vip) // known services keep their VIP
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	waitFor(t, syncWait, "the global to confirm web's VIP", func() error {
		got, proposed := vipOf(t, z1.apiURL, "web")
		if proposed || got == "" {
			return fmt.Errorf("web: %q proposed %v", got, proposed)
		}
		if got != proposal {
			t.Errorf("the global assigned %s, not the zone's proposal %s", got, proposal)
		}
		return nil
	})
	waitResolve(t, dns2, "web.mesh", proposal)
}

func TestVIPReleasedOnlyAfterCooldown(t *testing.T) {
	g := startGlobal(t, t.TempDir(), "--vip-cooldown", "3s")
	dnsAddr := freePort(t)
	z := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--dns-addr", dnsAddr)
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	var vip string
	waitFor(t, syncWait, "backend's VIP", func() error {
		if vip, _ = vipOf(t, g.apiURL, "backend"); vip == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	waitResolve(t, dnsAddr, "backend.mesh", vip)

	// Gone everywhere: the name stops resolving at once, the VIP is kept...
	if status, body := call(t, "DELETE", z.apiURL+"/meshes/default/dataplanes/backend-1", ""); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	waitResolve(t, dnsAddr, "backend.mesh", "NXDOMAIN")
	waitFor(t, syncWait, "the VIP kept and marked unused", func() error {
		status, body := call(t, "GET", g.apiURL+"/meshes/default/vips", "")
		if status != 200 || !strings.Contains(body, vip) || !strings.Contains(body, "unusedSince") {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	// ...and a service coming back within the cool-down gets it again.
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	waitResolve(t, dnsAddr, "backend.mesh", vip)

	// Gone for longer than the cool-down: released.
	call(t, "DELETE", z.apiURL+"/meshes/default/dataplanes/backend-1", "")
	waitFor(t, syncWait, "the VIP to be released", func() error {
		if got, _ := vipOf(t, g.apiURL, "backend"); got != "" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	})
}

func TestIPv6VIPsAnswerAAAA(t *testing.T) {
	const v6 = "fd00:a7::/64"
	g := startGlobal(t, t.TempDir(), "--vip-cidr6", v6)
	dns1 := freePort(t)
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--dns-addr", dns1, "--vip-cidr6", v6)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile(), "--vip-cidr6", v6)
	applyFile(t, z2, "../sample/zone-2.yaml")
	var want string
	waitFor(t, syncWait, "backend's IPv6 VIP on the global", func() error {
		status, body := call(t, "GET", g.apiURL+"/meshes/default/vips", "")
		var l struct {
			Items []struct {
				VIP6 string `json:"vip6"`
			} `json:"items"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &l) != nil || len(l.Items) != 1 || !strings.HasPrefix(l.Items[0].VIP6, "fd00:a7::") {
			return fmt.Errorf("%d %s", status, body)
		}
		want = l.Items[0].VIP6
		return nil
	})
	waitFor(t, syncWait, "AAAA from zone-1", func() error {
		m := new(mdns.Msg)
		m.SetQuestion("backend.mesh.", mdns.TypeAAAA)
		r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(m, dns1)
		if err != nil {
			return err
		}
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.AAAA).AAAA.String() != want {
			return fmt.Errorf("got %v, want %s", r.Answer, want)
		}
		return nil
	})
	_ = z1
}

// Two zones cut off from the global each propose the same VIP for a
// different new service; once back, the global gives them distinct VIPs
// and both zones switch to its assignment.
func TestConflictingProposalsSettledByTheGlobal(t *testing.T) {
	const cidr = "240.0.0.0/24" // the smallest range: colliding proposals are easy to find
	prefix := netip.MustParsePrefix(cidr)
	seen := map[netip.Addr]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		name := fmt.Sprintf("svc-%d", i)
		p, err := vip.Propose(prefix, "default", name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[p]; ok {
			a, b = other, name
		}
		seen[p] = name
	}
	gdir, kdsAddr := t.TempDir(), freePort(t)
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr, "--vip-cidr", cidr)
	dns1, dns2 := freePort(t), freePort(t)
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), kdsAddr, g.caFile(), "--dns-addr", dns1, "--vip-cidr", cidr)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, g.caFile(), "--dns-addr", dns2, "--vip-cidr", cidr)
	g.stop()

	put := func(z *process, service string) {
		body := strings.NewReplacer("backend-1", service+"-1", `"atoll.io/service":"backend"`, `"atoll.io/service":"`+service+`"`).Replace(backendJSON)
		if status, resp := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+service+"-1", body); status != 201 {
			t.Fatalf("%d %s", status, resp)
		}
	}
	put(z1, a)
	put(z2, b)
	var pa, pb string
	waitFor(t, syncWait, "both zones' proposals", func() error {
		var propA, propB bool
		pa, propA = vipOf(t, z1.apiURL, a)
		pb, propB = vipOf(t, z2.apiURL, b)
		if pa == "" || pb == "" || !propA || !propB {
			return fmt.Errorf("zone-1 %s: %q (proposed %v); zone-2 %s: %q (proposed %v)", a, pa, propA, b, pb, propB)
		}
		return nil
	})
	if pa != pb {
		t.Fatalf("the zones were meant to propose the same VIP: %s for %s, %s for %s", pa, a, pb, b)
	}
	waitResolve(t, dns1, a+".mesh", pa)
	waitResolve(t, dns2, b+".mesh", pb)

	g = startGlobal(t, gdir, "--kds-addr", kdsAddr, "--vip-cidr", cidr)
	var va, vb string
	waitFor(t, syncWait, "the global's VIPs for both", func() error {
		va, _ = vipOf(t, g.apiURL, a)
		vb, _ = vipOf(t, g.apiURL, b)
		if va == "" || vb == "" {
			return fmt.Errorf("%s: %q, %s: %q", a, va, b, vb)
		}
		return nil
	})
	if va == vb {
		t.Fatalf("the global gave %s and %s the same VIP %s", a, b, va)
	}
	if va != pa && vb != pb {
		t.Errorf("neither proposal (%s) was kept: %s got %s, %s got %s", pa, a, va, b, vb)
	}
	for _, z := range []struct {
		name, api, dns string
	}{{"zone-1", z1.apiURL, dns1}, {"zone-2", z2.apiURL, dns2}} {
		for service, want := range map[string]string{a: va, b: vb} {
			waitFor(t, syncWait, z.name+" to hold the global's VIP for "+service, func() error {
				if got, proposed := vipOf(t, z.api, service); got != want || proposed {
					return fmt.Errorf("%s (proposed %v), want %s", got, proposed, want)
				}
				return nil
			})
			waitResolve(t, z.dns, service+".mesh", want)
		}
	}
}
