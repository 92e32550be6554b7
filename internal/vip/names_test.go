package vip

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
)

func TestSettle(t *testing.T) {
	cases := []struct {
		name       string
		candidates []string
		assigned   []string
		want       string // the losers, fmt.Sprint of the map
	}{
		{"no conflict", []string{"backend", "web", "backend_default_svc_80"}, nil, "map[]"},
		{"the assigned one keeps the name, even when it is the old spelling",
			[]string{"backend", "Backend"}, []string{"Backend"}, "map[backend:{backend Backend }]"},
		{"a newcomer with the valid spelling does not take a served name",
			[]string{"Backend", "backend"}, []string{"Backend"}, "map[backend:{backend Backend }]"},
		{"the valid spelling wins between newcomers",
			[]string{"BACKEND", "Backend", "backend"}, nil, "map[BACKEND:{backend backend } Backend:{backend backend }]"},
		{"the valid spelling wins between assigned ones (tables from before the rule)",
			[]string{"Backend", "backend"}, []string{"Backend", "backend"}, "map[Backend:{backend backend }]"},
		{"byte order between old spellings", []string{"bACKEND", "Backend"}, nil, "map[bACKEND:{backend Backend }]"},
		{"a dotted name cannot take a Kubernetes name",
			[]string{"a.b.svc.80", "a_b_svc_80"}, []string{"a_b_svc_80"}, "map[a.b.svc.80:{a.b.svc.80 a_b_svc_80 }]"},
		{"a service that loses one name loses all",
			[]string{"A_B_svc_80", "a.b.svc.80"}, []string{"a.b.svc.80"}, "map[A_B_svc_80:{a.b.svc.80 a.b.svc.80 }]"},
		{"duplicates are one candidate", []string{"backend", "backend"}, []string{"backend"}, "map[]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assigned := map[string]bool{}
			for _, s := range c.assigned {
				assigned[s] = true
			}
			got := Settle(c.candidates, assigned)
			if s := fmt.Sprint(got); s != c.want && !(len(got) == 0 && c.want == "map[]") {
				t.Errorf("Settle(%v, %v) = %s, want %s", c.candidates, c.assigned, s, c.want)
			}
			// Candidates' order does not matter.
			rev := make([]string, len(c.candidates))
			for i, s := range c.candidates {
				rev[len(rev)-1-i] = s
			}
			if a, b := fmt.Sprint(got), fmt.Sprint(Settle(rev, assigned)); a != b {
				t.Errorf("the order of candidates changed the outcome: %s, then %s", a, b)
			}
		})
	}
}

func TestReconcileGivesNoVIPToANameAlreadyHeld(t *testing.T) {
	now := time.Now()
	cool := time.Hour
	t1, _, err := Reconcile(nil, "default", map[string]bool{"backend": true}, cidr, netip.Prefix{}, now, cool)
	if err != nil {
		t.Fatal(err)
	}
	held := t1.GetEntries()[0].GetVip()

	// A zone later offers "Backend" (stored before the naming rule).
	t2, _, err := Reconcile(t1, "default", map[string]bool{"backend": true, "Backend": true}, cidr, netip.Prefix{}, now, cool)
	if err != nil {
		t.Fatal(err)
	}
	if got := services(t2); got != "[backend]" {
		t.Fatalf("entries %s, want only backend: Backend maps to the name backend holds", got)
	}
	if t2.GetEntries()[0].GetVip() != held {
		t.Errorf("backend's VIP moved from %s to %s", held, t2.GetEntries()[0].GetVip())
	}

	// The holder stops being offered: it keeps the name through the
	// cool-down, and only then does the other get a VIP.
	t3, _, _ := Reconcile(t2, "default", map[string]bool{"Backend": true}, cidr, netip.Prefix{}, now.Add(time.Minute), cool)
	if got := services(t3); got != "[backend]" {
		t.Errorf("during the cool-down: entries %s, want only backend", got)
	}
	t4, _, _ := Reconcile(t3, "default", map[string]bool{"Backend": true}, cidr, netip.Prefix{}, now.Add(2*cool), cool)
	if got := services(t4); got != "[Backend]" {
		t.Errorf("after the cool-down: entries %s, want Backend", got)
	}

	// Two newcomers at once: the valid spelling is given the VIP.
	t5, _, _ := Reconcile(nil, "default", map[string]bool{"Web": true, "web": true}, cidr, netip.Prefix{}, now, cool)
	if got := services(t5); got != "[web]" {
		t.Errorf("entries %s, want only web", got)
	}
}

func services(t *v1alpha1.VIPTable) string {
	var out []string
	for _, e := range t.GetEntries() {
		out = append(out, e.GetService())
	}
	return fmt.Sprint(out)
}
