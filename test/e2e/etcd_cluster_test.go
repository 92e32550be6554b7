package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

// quorumWait bounds how long the global may take to see a quorum lost or
// back (its readiness check times out after --etcd-dial-timeout, and the
// members elect a leader); only waited for.
const quorumWait = 60 * time.Second

// A global on an external 3-member etcd cluster: losing one member (the
// leader) interrupts nothing the global serves for longer than an
// election; losing the quorum makes the global unready and its writes fail
// with a clear answer while zones keep serving what they have and taking
// local writes; when the quorum is back the global is ready again by
// itself, nothing acknowledged is lost, and the zone's writes made in the
// meantime reach the global and the other zone.
func TestGlobalOnAThreeMemberEtcdCluster(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	kdsAddr := freePort(t)
	g := startGlobal(t, t.TempDir(), "--kds-addr", kdsAddr,
		"--etcd-endpoints", strings.Join(c.Endpoints(), ","), "--etcd-dial-timeout", "1s")
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), kdsAddr, g.caFile())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, g.caFile())
	register := func(name string, port int) {
		t.Helper()
		if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/"+name, fmt.Sprintf(
			`{"type":"Dataplane","mesh":"default","name":%q,"networking":{"address":"10.9.0.1","inbound":[{"port":%d,"tags":{"atoll.io/service":%q}}]}}`,
			name, port, name)); status/100 != 2 {
			t.Fatalf("registering %s on zone-1: %d %s", name, status, body)
		}
	}
	putMesh := func(name string) (int, string) {
		return call(t, "PUT", g.apiURL+"/meshes/"+name, `{"type":"Mesh"}`)
	}
	reachesZone2 := func(service string) {
		t.Helper()
		waitFor(t, quorumWait, service+" of zone-1 counted by zone-2", func() error {
			if n := instancesIn(t, z2.apiURL, service, "zone-1"); n != 1 {
				return fmt.Errorf("zone-2 counts %d instances", n)
			}
			return nil
		})
	}
	register("before", 9001)
	reachesZone2("before")

	// One member gone, the leader: after at most an election, every write
	// is acknowledged and the global stays ready.
	leader := c.Leader()
	if leader < 0 {
		t.Fatal("the etcd cluster has no leader")
	}
	c.Stop(leader)
	waitFor(t, quorumWait, "a write at the global with one member down", func() error {
		if status, body := putMesh("one-down-0"); status/100 != 2 {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	for i := 1; i < 10; i++ {
		if status, body := putMesh(fmt.Sprintf("one-down-%d", i)); status/100 != 2 {
			t.Errorf("PUT mesh one-down-%d with one member of three down: %d %s", i, status, body)
		}
		if status, body := call(t, "GET", g.apiURL+"/readyz", ""); status != http.StatusOK {
			t.Errorf("the global unready with one member of three down: %d %s", status, body)
		}
	}
	register("one-down", 9002)
	reachesZone2("one-down")

	// The quorum lost: the global says it is not ready because of etcd and
	// refuses writes; the zones keep serving and take local writes.
	second := (leader + 1) % 3
	c.Stop(second)
	waitFor(t, quorumWait, "the global unready for etcd", func() error {
		if status, body := call(t, "GET", g.apiURL+"/readyz", ""); status != http.StatusServiceUnavailable || !strings.Contains(body, "etcd") {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	if status, body := putMesh("no-quorum"); status/100 == 2 || status < 500 {
		t.Errorf("PUT mesh without an etcd quorum: %d %s, want a server error", status, body)
	}
	for _, z := range []*process{z1, z2} {
		if status, body := call(t, "GET", z.apiURL+"/readyz", ""); status != http.StatusOK {
			t.Errorf("a zone unready while the global's etcd has no quorum: %d %s", status, body)
		}
	}
	if n := instancesIn(t, z2.apiURL, "one-down", "zone-1"); n != 1 {
		t.Errorf("zone-2 lost zone-1's instance while the global's etcd has no quorum: %d", n)
	}
	register("no-quorum", 9003)

	// The quorum back: ready by itself, nothing lost, the zone's write of
	// the meantime everywhere.
	c.Start(leader)
	c.Start(second)
	waitFor(t, quorumWait, "the global ready again", func() error {
		if status, body := call(t, "GET", g.apiURL+"/readyz", ""); status != http.StatusOK {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	for i := range 10 {
		if status, body := call(t, "GET", g.apiURL+fmt.Sprintf("/meshes/one-down-%d", i), ""); status != http.StatusOK {
			t.Errorf("mesh one-down-%d, acknowledged with one member down, after the quorum came back: %d %s", i, status, body)
		}
	}
	if status, body := putMesh("after"); status/100 != 2 {
		t.Errorf("PUT mesh after the quorum came back: %d %s", status, body)
	}
	reachesZone2("no-quorum")
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "before.zone-1,no-quorum.zone-1,one-down.zone-1")
}
