package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
)

// TestKubernetesZoneRestartWithGlobalDown: a Kubernetes zone keeps what
// the global sent (VIPs, other zones' ZoneIngresses) as custom resources,
// so, restarted with a fresh data directory while the global is down, it
// still answers the same VIP for a service of another zone and knows that
// zone's instances. It is live and ready (it serves what it has), and its
// status says the global is not connected. Once the global is back, the
// zone follows it again.
func TestKubernetesZoneRestartWithGlobalDown(t *testing.T) {
	c := startKubeCluster(t)
	kdsAddr, gdir := freePort(t), t.TempDir()
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	dns1 := freePort(t)
	z1 := startKubernetesZone(t, c, "zone-1", g, "--dns-addr", dns1)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	applyFile(t, z2, "../sample/zone-2.yaml")

	var vip string
	waitFor(t, syncWait, "the global's VIP for backend", func() error {
		if vip, _ = vipOf(t, g.apiURL, "backend"); vip == "" {
			return fmt.Errorf("no VIP yet")
		}
		return nil
	})
	waitResolve(t, dns1, "backend.mesh", vip)
	waitServices(t, z1, "backend:zone-2=3")

	g.stop()
	z1.stop()
	z1 = startKubernetesZone(t, c, "zone-1", g, "--dns-addr", dns1)

	// What the global sent is there, as custom resources in the zone's
	// system namespace.
	ziGVR, err := crdstore.GVR(resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.dyn.Resource(ziGVR).Namespace(zoneNamespace).Get(context.Background(), "zone-2", metav1.GetOptions{}); err != nil {
		t.Errorf("zone-2's ZoneIngress in namespace %s: %v", zoneNamespace, err)
	}

	// And the restarted zone serves it (once it has read its store: the
	// global, down, sends nothing).
	waitResolve(t, dns1, "backend.mesh", vip)
	waitFor(t, syncWait, "zone-1 to hold the global's VIP for backend", func() error {
		if got, proposed := vipOf(t, z1.apiURL, "backend"); got != vip || proposed {
			return fmt.Errorf("zone-1's VIP for backend: %s (proposed %v), want the global's %s", got, proposed, vip)
		}
		return nil
	})
	waitServices(t, z1, "backend:zone-2=3")

	// Live and ready: an unreachable global leaves the zone serving what
	// it has. GET /zone says the global is not connected, and why.
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := call(t, "GET", z1.apiURL+path, ""); status != http.StatusOK {
			t.Errorf("GET %s with the global down: %d %s, want 200", path, status, body)
		}
	}
	waitFor(t, syncWait, "zone-1's status to report the global unreachable", func() error {
		status, body := call(t, "GET", z1.apiURL+"/zone", "")
		var st struct {
			Connected bool   `json:"connected"`
			LastError string `json:"lastError"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
			return fmt.Errorf("GET /zone: %d %s", status, body)
		}
		if st.Connected || st.LastError == "" || !strings.Contains(st.LastError, g.kdsAddr) {
			return fmt.Errorf("GET /zone = %s, want connected false and a last error naming %s", body, g.kdsAddr)
		}
		return nil
	})

	// Back online, the zone follows the global again: disabling zone-2
	// there deletes zone-2's ZoneIngress object here.
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":false}`); status != http.StatusOK {
		t.Fatalf("disabling zone-2: %d %s", status, body)
	}
	waitServices(t, z1, "")
	waitFor(t, syncWait, "zone-2's ZoneIngress object deleted", func() error {
		_, err := c.dyn.Resource(ziGVR).Namespace(zoneNamespace).Get(context.Background(), "zone-2", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("zone-2's ZoneIngress in namespace %s: still there (%v)", zoneNamespace, err)
	})
}
