package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// TestKubernetesGatewayLifecycleAtTheGlobal follows a gateway pod's life
// as the global sees it: created, moved to another IP, relabelled, no
// longer selected by any Service (its Dataplane goes: it has no service to
// be tagged with), selected again, deleted.
func TestKubernetesGatewayLifecycleAtTheGlobal(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	startKubernetesZone(t, c, "zone-1", g)
	ctx := context.Background()
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	c.createService(t, "kong", "kong-proxy", nil)
	c.createGatewayPod(t, "kong", "kong-0", "10.244.1.7")

	// at waits until the global's Dataplane of kong-0 satisfies want (nil:
	// until there is none).
	at := func(what string, want func(globalDataplane) error) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() error {
			for _, dp := range globalDataplanes(t, g) {
				if strings.Contains(dp.Name, "kong-0") {
					if want == nil {
						return fmt.Errorf("the global still lists %s", dp.Name)
					}
					return want(dp)
				}
			}
			if want == nil {
				return nil
			}
			return fmt.Errorf("no Dataplane of kong-0 at the global")
		})
	}
	tagged := func(address string, tags map[string]string) func(globalDataplane) error {
		return func(dp globalDataplane) error {
			got := dp.Networking.Gateway.Tags
			for k, v := range tags {
				if got[k] != v {
					return fmt.Errorf("%s: tag %s = %q, want %q (tags %v)", dp.Name, k, got[k], v, got)
				}
			}
			if dp.Networking.Address != address {
				return fmt.Errorf("%s: address %s, want %s", dp.Name, dp.Networking.Address, address)
			}
			return nil
		}
	}
	base := map[string]string{"atoll.io/service": "kong-proxy_kong_svc_80", "k8s.atoll.io/service-name": "kong-proxy",
		"k8s.atoll.io/namespace": "kong", "atoll.io/zone": "zone-1", "app": "kong"}
	at("kong-0 at the global", tagged("10.244.1.7", base))

	pods := c.client.CoreV1().Pods("kong")
	pod, err := pods.Get(ctx, "kong-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.PodIP, pod.Status.PodIPs = "10.244.2.9", []corev1.PodIP{{IP: "10.244.2.9"}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	at("kong-0 at its new IP", tagged("10.244.2.9", base))

	if _, err := pods.Patch(ctx, "kong-0", types.MergePatchType, []byte(`{"metadata":{"labels":{"version":"v2"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	relabelled := maps.Clone(base)
	relabelled["version"] = "v2"
	at("kong-0 relabelled", tagged("10.244.2.9", relabelled))

	services := c.client.CoreV1().Services("kong")
	if _, err := services.Patch(ctx, "kong-proxy", types.MergePatchType, []byte(`{"spec":{"selector":{"app":"other"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	at("kong-0 gone once no Service selects it", nil)
	if _, err := services.Patch(ctx, "kong-proxy", types.MergePatchType, []byte(`{"spec":{"selector":{"app":"kong"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	at("kong-0 back once selected again", tagged("10.244.2.9", relabelled))

	zero := int64(0)
	if err := pods.Delete(ctx, "kong-0", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	at("kong-0 gone once deleted", nil)
}
