package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

// failoverWait bounds how long zones take to reach another replica of the
// global once theirs is gone (the KDS client's reconnect backoff starts at
// 100 ms, pick_first moves to the next address on a refused connection);
// only waited for.
const failoverWait = 30 * time.Second

// Two replicas of the global on one etcd, sharing one KDS certificate;
// three zones list both (--global-address grpcs://A,grpcs://B) and each
// uses one at a time. When a replica stops, the zones on it fail over to
// the other and sync goes on; services registered through the failovers
// get VIPs, none assigned twice and each the same in every zone; both
// replicas' insights show every zone online with its Dataplanes.
func TestZonesFailOverBetweenGlobalReplicas(t *testing.T) {
	srv, _ := etcdtest.Start(t, "")
	kds, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kdsA, kdsB := freePort(t), freePort(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	replica := func(dir, kdsAddr string) *process {
		return startGlobal(t, dir, "--kds-addr", kdsAddr, "--etcd-endpoints", srv.ClientEndpoint(),
			"--kds-tls-cert", kds.Cert, "--kds-tls-key", kds.Key)
	}
	ga, gb := replica(dirA, kdsA), replica(dirB, kdsB)
	zones := map[string]*process{}
	for _, name := range []string{"zone-1", "zone-2", "zone-3"} {
		// Tokens from either replica: they share the signing keys in etcd.
		zones[name] = startZone(t, name, t.TempDir(), append([]string{
			"--global-address", "grpcs://" + kdsA + ", grpcs://" + kdsB, "--global-ca-file", kds.CA},
			tokenFlags(t, ga, name)...)...)
	}
	// live lists the KDS addresses of the running replicas.
	live := func() []string {
		var up []string
		for _, g := range []*process{ga, gb} {
			select {
			case <-g.done:
			default:
				up = append(up, g.kdsAddr)
			}
		}
		return up
	}
	// allConnected waits until every zone is connected to a running
	// replica (as its status says), in a session that began after since
	// when since is not zero.
	allConnected := func(what string, since time.Time) {
		t.Helper()
		start := time.Now()
		waitFor(t, failoverWait, what, func() error {
			for name, z := range zones {
				status, body := call(t, "GET", z.apiURL+"/zone", "")
				var st struct {
					Connected   bool      `json:"connected"`
					ConnectedTo string    `json:"connectedTo"`
					Since       time.Time `json:"since"`
				}
				if status != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
					return fmt.Errorf("%s: GET /zone: %d %s", name, status, body)
				}
				if !st.Connected || st.Since.Before(since) {
					return fmt.Errorf("%s: connected %v since %s, want a session begun after %s", name, st.Connected, st.Since, since)
				}
				if up := live(); !slices.Contains(up, st.ConnectedTo) {
					return fmt.Errorf("%s: connected to %q, not one of the running replicas %v", name, st.ConnectedTo, up)
				}
			}
			return nil
		})
		t.Logf("%s: every zone connected after %s", what, time.Since(start).Round(10*time.Millisecond))
	}
	registered := map[string][]string{} // services by zone
	register := func(round int) {
		t.Helper()
		for name, z := range zones {
			for k := range 3 {
				svc := fmt.Sprintf("s%d-%s-%d", round, strings.TrimPrefix(name, "zone-"), k)
				body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":%q,"networking":{"address":"10.9.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":%q}}]}}`, svc, svc)
				if status, out := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/"+svc, body); status/100 != 2 {
					t.Fatalf("registering %s on %s: %d %s", svc, name, status, out)
				}
				registered[name] = append(registered[name], svc)
			}
		}
	}
	// everyZoneSeesEveryService waits until each zone counts one instance
	// of every other zone's services.
	everyZoneSeesEveryService := func(what string) {
		t.Helper()
		waitFor(t, syncWait, what, func() error {
			for name, z := range zones {
				for other, svcs := range registered {
					if other == name {
						continue
					}
					for _, svc := range svcs {
						if n := instancesIn(t, z.apiURL, svc, other); n != 1 {
							return fmt.Errorf("%s counts %d instances of %s in %s", name, n, svc, other)
						}
					}
				}
			}
			return nil
		})
	}

	allConnected("both replicas up", time.Time{})
	register(1)
	everyZoneSeesEveryService("services of round 1 everywhere")

	// The zones on A move to B (which zones were on A is up to each
	// one's shuffled order).
	ga.stop()
	allConnected("replica A stopped", time.Time{})
	register(2)
	everyZoneSeesEveryService("services of round 2 everywhere, through replica B")

	// Every zone is on B now, and moves to A: each one's session is new.
	ga = replica(dirA, kdsA)
	stoppedB := time.Now()
	gb.stop()
	allConnected("replica A back, replica B stopped", stoppedB)
	register(3)
	everyZoneSeesEveryService("services of round 3 everywhere, through replica A")
	gb = replica(dirB, kdsB)

	// VIPs: one per service, none given twice, the same in every zone.
	waitFor(t, syncWait, "one confirmed VIP per service, the same in every zone", func() error {
		owner := map[string]string{} // VIP → service
		for name, z := range zones {
			for _, svcs := range registered {
				for _, svc := range svcs {
					vip, proposed := vipOf(t, z.apiURL, svc)
					if vip == "" || proposed {
						return fmt.Errorf("%s has no confirmed VIP for %s (%q, proposed %v)", name, svc, vip, proposed)
					}
					if other, taken := owner[vip]; taken && other != svc {
						return fmt.Errorf("VIP %s is both %s's and %s's in %s's view", vip, other, svc, name)
					}
					owner[vip] = svc
				}
			}
		}
		if n := len(registered) * 9; len(owner) != n {
			return fmt.Errorf("%d VIPs for %d services: a service has different VIPs in different zones", len(owner), n)
		}
		return nil
	})

	// Insights: either replica shows every zone online with its
	// Dataplanes.
	for _, g := range []*process{ga, gb} {
		waitFor(t, syncWait, "every zone online with its Dataplanes at "+g.apiURL, func() error {
			status, body := call(t, "GET", g.apiURL+"/zones", "")
			if status != http.StatusOK {
				return fmt.Errorf("GET /zones: %d %s", status, body)
			}
			var l struct {
				Items []struct {
					Name       string `json:"name"`
					Online     bool   `json:"online"`
					Dataplanes int    `json:"dataplanes"`
				} `json:"items"`
			}
			if err := json.Unmarshal([]byte(body), &l); err != nil {
				return err
			}
			if len(l.Items) != len(zones) {
				return fmt.Errorf("%d zones listed: %s", len(l.Items), body)
			}
			for _, it := range l.Items {
				if !it.Online || it.Dataplanes != len(registered[it.Name]) {
					return fmt.Errorf("%s: online %v with %d Dataplanes, want online with %d", it.Name, it.Online, it.Dataplanes, len(registered[it.Name]))
				}
			}
			return nil
		})
	}
}
