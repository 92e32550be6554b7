package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/test/zonerbac"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// TestKubernetesZoneMissingRBACRule runs the zone with the chart's rules
// less patch on services: the gateway pod's Dataplane still reaches the
// global, the Service gets no annotations, and the zone's log names the
// refused request and the rules to grant.
func TestKubernetesZoneMissingRBACRule(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	rules, err := chartRBAC(t).Without("", "services", "patch")
	if err != nil {
		t.Fatal(err)
	}
	z := startKubernetesZoneAs(t, c, "zone-1", g, c.zoneKubeconfig(t, rules))

	ctx := context.Background()
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	if _, err := c.client.CoreV1().Services("kong").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kong-proxy"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "kong"},
			Ports: []corev1.ServicePort{{Name: "proxy", Port: 80, TargetPort: intstr.FromString("proxy")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createGatewayPod(t, "kong", "kong-0", "10.244.1.7")

	waitFor(t, 20*time.Second, "the gateway's Dataplane at the global", func() error {
		for _, dp := range globalDataplanes(t, g) {
			if strings.Contains(dp.Name, "kong-0") {
				return nil
			}
		}
		return fmt.Errorf("no Dataplane named after kong-0 at the global")
	})
	want := []string{`services \"kong-proxy\" is forbidden`, `cannot patch resource \"services\"`, zonerbac.Dir("")}
	waitFor(t, 20*time.Second, "the zone's log to name the refused patch", func() error {
		for _, line := range strings.Split(z.logs.String(), "\n") {
			if !strings.Contains(line, "service-upstream") {
				continue
			}
			missing := false
			for _, w := range want {
				missing = missing || !strings.Contains(line, w)
			}
			if !missing {
				return nil
			}
		}
		return fmt.Errorf("no service-upstream log line containing all of %q", want)
	})
	svc, err := c.client.CoreV1().Services("kong").Get(ctx, "kong-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.Annotations[kubernetes.ServiceUpstream]; ok {
		t.Errorf("Service kong/kong-proxy has %s=%q, though the zone may not patch services", kubernetes.ServiceUpstream, v)
	}
}

// TestKubernetesZoneUnreadyWhileARuleIsMissing starts the zone with a pod
// already in the mesh and the chart's rules less create on dataplanes: the
// zone cannot write the pod's Dataplane, and /readyz says so, naming the
// refused request and the rules; once the rules are granted it becomes
// ready without a restart.
func TestKubernetesZoneUnreadyWhileARuleIsMissing(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	c.createService(t, "kong", "kong-proxy", nil)
	c.createGatewayPod(t, "kong", "kong-0", "10.244.1.7")
	rules, err := chartRBAC(t).Without("atoll.io", "dataplanes", "create")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--global-address", "grpcs://" + g.kdsAddr, "--global-ca-file", g.caFile(),
		"--mode", "kubernetes", "--kubeconfig", c.zoneKubeconfig(t, rules), "--namespace", zoneNamespace}
	args = append(args, syncedTokenFlags(t, g, "zone-1")...)
	z := startAtollUnready(t, zoneArgs("zone-1", t.TempDir(), args)...)

	want := []string{"not ready: kubernetes:", `cannot create resource "dataplanes"`, zonerbac.Dir("")}
	waitFor(t, 20*time.Second, "/readyz to name the refused create", func() error {
		status, body := call(t, "GET", z.apiURL+"/readyz", "")
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz: %d %s, want 503", status, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				return fmt.Errorf("/readyz: %s, want it to contain %q", body, w)
			}
		}
		return nil
	})

	c.zoneKubeconfig(t, chartRBAC(t))
	z.waitReady(func() (*http.Client, error) { return http.DefaultClient, nil })
	waitFor(t, 20*time.Second, "the gateway's Dataplane at the global", func() error {
		for _, dp := range globalDataplanes(t, g) {
			if strings.Contains(dp.Name, "kong-0") {
				return nil
			}
		}
		return fmt.Errorf("no Dataplane named after kong-0 at the global")
	})
}
