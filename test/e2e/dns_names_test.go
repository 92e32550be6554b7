package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// vipConflict is a service's conflict in a control plane's
// GET /meshes/default/vips, and its VIP there.
func vipConflict(t *testing.T, apiURL, service string) (conflict map[string]string, vip string, listed bool) {
	status, body := call(t, "GET", apiURL+"/meshes/default/vips", "")
	if status != 200 {
		return nil, "", false
	}
	var l struct {
		Items []struct {
			Service  string            `json:"service"`
			VIP      string            `json:"vip"`
			Conflict map[string]string `json:"conflict"`
		} `json:"items"`
	}
	json.Unmarshal([]byte(body), &l)
	for _, it := range l.Items {
		if it.Service == service {
			return it.Conflict, it.VIP, true
		}
	}
	return nil, "", false
}

// zone-1 serves backend first; "Backend" (which maps to the same DNS name)
// is refused by the API, and when a zone offers it anyway (a Dataplane
// stored before the naming rule, here a hand-driven KDS client) it takes
// nothing: backend.mesh keeps answering with backend's VIP in every zone,
// also after a restart, and the zones list the conflict.
func TestDNSNameStaysWithItsFirstService(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	dns1, dns2 := freePort(t), freePort(t)
	// zone-1 forwards other names only for 10.0.0.0/8: the test, on
	// loopback, is an outsider there.
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--dns-addr", dns1,
		"--dns-upstream", "127.0.0.1:9", "--dns-upstream-allow", "10.0.0.0/8")
	z2dir := t.TempDir()
	z2 := startSyncedZone(t, "zone-2", z2dir, g.kdsAddr, g.caFile(), "--dns-addr", dns2)

	if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("registering backend in zone-1: %d %s", status, body)
	}
	var held string
	waitFor(t, syncWait, "the global's VIP for backend", func() error {
		if held, _ = vipOf(t, g.apiURL, "backend"); held == "" {
			return fmt.Errorf("no VIP yet")
		}
		return nil
	})
	waitResolve(t, dns1, "backend.mesh", held)
	waitResolve(t, dns2, "backend.mesh", held)

	// The API refuses the spelling that maps to a name already served.
	upper := strings.NewReplacer("backend-1", "backend-2", `"atoll.io/service":"backend"`, `"atoll.io/service":"Backend"`).Replace(backendJSON)
	status, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/backend-2", upper)
	if status != 400 || !decodeError(t, body).names(`networking.inbound[0].tags["atoll.io/service"]`) || !strings.Contains(body, "upper-case") {
		t.Errorf("PUT a Dataplane of service Backend: %d %s, want 400 naming the service tag and its upper-case letters", status, body)
	}

	// A zone offers "Backend" all the same.
	rogue := dialRaw(t, g, "zone-3")
	zi := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-3"},
		Spec: &v1alpha1.ZoneIngress{
			Zone:       "zone-3",
			Networking: &v1alpha1.ZoneIngress_Networking{Address: "127.0.0.1", Port: 10003},
			AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{{
				Mesh: "default", Tags: map[string]string{resource.ServiceTag: "Backend"}, Instances: 5, Port: 9001,
			}},
		},
	}
	if refused := rogue.push(resource.ZoneIngressType, "1", zi); len(refused) != 0 {
		t.Fatalf("the global refused zone-3's ingress: %v", refused)
	}

	for _, z := range []*process{z1, z2} {
		waitFor(t, syncWait, "the conflict in "+z.apiURL, func() error {
			c, vip, listed := vipConflict(t, z.apiURL, "Backend")
			if !listed || c["name"] != "backend" || c["heldBy"] != "backend" || vip != "" {
				return fmt.Errorf("Backend: listed %v, conflict %v, VIP %q; want a conflict over backend held by backend and no VIP", listed, c, vip)
			}
			return nil
		})
		_, metrics := call(t, "GET", z.apiURL+"/metrics", "")
		if !strings.Contains(metrics, "atoll_dns_name_conflicts 1") {
			t.Errorf("conflict not counted:\n%s", grepLines(metrics, "atoll_dns_name_conflicts"))
		}
		if n := strings.Count(z.logs.String(), "maps to a DNS name another service holds"); n != 1 {
			t.Errorf("conflict logged %d times, want once", n)
		}
	}
	for _, addr := range []string{dns1, dns2} {
		for _, network := range []string{"udp", "tcp"} {
			for _, name := range []string{"backend.mesh", "Backend.mesh"} {
				if got := resolve(t, addr, network, name); got != held {
					t.Errorf("%s over %s at %s → %s, want backend's %s", name, network, addr, got, held)
				}
			}
		}
	}
	if vip, _ := vipOf(t, g.apiURL, "Backend"); vip != "" {
		t.Errorf("the global gave Backend the VIP %s", vip)
	}

	// The same after zone-2 restarts: the rule reads the global's table,
	// not what arrived first.
	z2.stop()
	z2 = startSyncedZone(t, "zone-2", z2dir, g.kdsAddr, g.caFile(), "--dns-addr", dns2)
	waitFor(t, syncWait, "the conflict in zone-2 after a restart", func() error {
		if c, _, _ := vipConflict(t, z2.apiURL, "Backend"); c["heldBy"] != "backend" {
			return fmt.Errorf("Backend's conflict: %v", c)
		}
		return nil
	})
	waitResolve(t, dns2, "backend.mesh", held)

	// zone-1 forwards nothing for a client outside --dns-upstream-allow.
	for _, network := range []string{"udp", "tcp"} {
		if got := resolve(t, dns1, network, "www.example.com"); got != mdns.RcodeToString[mdns.RcodeRefused] {
			t.Errorf("www.example.com over %s from outside the allowed networks: %s, want REFUSED", network, got)
		}
	}
}
