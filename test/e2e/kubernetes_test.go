package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/test/zonerbac"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// zoneNamespace is the system namespace Kubernetes zones run in.
const zoneNamespace = "atoll-system"

// kubeCluster is one Kubernetes cluster of a test: a real kube-apiserver
// with atoll's CRDs and the zone's system namespace.
type kubeCluster struct {
	env    *kubeenv.Env
	client *k8s.Clientset
	dyn    *dynamic.DynamicClient
}

func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	env := kubeenv.Start(t)
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join("..", "..", "charts", "atoll", "crds")); err != nil {
		t.Fatal(err)
	}
	c := &kubeCluster{env: env, client: env.Clientset(t), dyn: dyn}
	c.createNamespace(t, zoneNamespace, nil)
	return c
}

func (c *kubeCluster) createNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if _, err := c.client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// zoneServiceAccount is the ServiceAccount Kubernetes zones run as, in
// zoneNamespace.
const zoneServiceAccount = "atoll-zone"

// chartRBAC is the RBAC rules charts/atoll gives the zone.
func chartRBAC(t *testing.T) zonerbac.Rules {
	t.Helper()
	rules, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// zoneKubeconfig binds the zone's ServiceAccount to exactly rules (the
// last call wins for every zone of c) and writes a kubeconfig with a token
// of it, so the zone runs with the permissions an installed one has.
func (c *kubeCluster) zoneKubeconfig(t *testing.T, rules zonerbac.Rules) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := zonerbac.Grant(ctx, c.client, zoneNamespace, zoneServiceAccount, rules); err != nil {
		t.Fatal(err)
	}
	return kubeenv.WriteKubeconfig(t, c.env.ServiceAccountConfig(t, zoneNamespace, zoneServiceAccount))
}

// startKubernetesZone runs a zone in Kubernetes mode against c, synced
// with the global g, as the zone's ServiceAccount bound to the chart's
// RBAC rules. A request the API server refuses fails the test when it
// ends, even one the zone recovers from (an informer that cannot watch
// lists again and again): the rules lack a verb the zone uses.
func startKubernetesZone(t *testing.T, c *kubeCluster, zone string, g *process, args ...string) *process {
	t.Helper()
	p := startKubernetesZoneAs(t, c, zone, g, c.zoneKubeconfig(t, chartRBAC(t)), args...)
	t.Cleanup(func() {
		var refused, plain []string
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, "is forbidden") {
				refused = append(refused, line)
			}
			// Every line is in the zone's format (--log-format json),
			// client-go's included.
			if line != "" && !json.Valid([]byte(line)) {
				plain = append(plain, line)
			}
		}
		if len(plain) > 0 {
			t.Errorf("zone %s logged %d lines that are not JSON, e.g. %q", zone, len(plain), plain[0])
		}
		if len(refused) > 0 {
			t.Errorf("zone %s was refused requests under the rules of %s, which lack a verb it uses:\n%s",
				zone, zonerbac.Dir(""), strings.Join(refused, "\n"))
		}
	})
	return p
}

// startKubernetesZoneAs runs a zone in Kubernetes mode against c with the
// credentials of kubeconfig.
func startKubernetesZoneAs(t *testing.T, c *kubeCluster, zone string, g *process, kubeconfig string, args ...string) *process {
	t.Helper()
	base := []string{"--mode", "kubernetes", "--kubeconfig", kubeconfig, "--namespace", zoneNamespace}
	return startSyncedZone(t, zone, t.TempDir(), g.kdsAddr, g.caFile(), append(base, args...)...)
}

// createGatewayPod creates the pod namespace/name labelled app: kong and
// annotated as a delegated gateway, then plays the kubelet: it gives the
// pod ip and marks it Ready.
func (c *kubeCluster) createGatewayPod(t *testing.T, namespace, name, ip string) *corev1.Pod {
	t.Helper()
	return c.createGatewayPodAs(t, namespace, name, ip, "")
}

// createService creates the Service namespace/name selecting app: kong,
// port 80 to the pod's port "proxy".
func (c *kubeCluster) createService(t *testing.T, namespace, name string, annotations map[string]string) {
	t.Helper()
	if _, err := c.client.CoreV1().Services(namespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "kong"},
			Ports: []corev1.ServicePort{{Name: "proxy", Port: 80, TargetPort: intstr.FromString("proxy")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service %s/%s: %v", namespace, name, err)
	}
}

// annotationsAre checks the Service's service-upstream annotations ("" for
// absent).
func annotationsAre(ctx context.Context, c *kubeCluster, namespace, name, upstream, nginx string) error {
	svc, err := c.client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	a := svc.Annotations
	if a[kubernetes.ServiceUpstream] != upstream || a[kubernetes.NginxServiceUpstream] != nginx {
		return fmt.Errorf("Service %s/%s annotations = %v, want %s=%q and %s=%q", namespace, name, a,
			kubernetes.ServiceUpstream, upstream, kubernetes.NginxServiceUpstream, nginx)
	}
	return nil
}

// globalDataplane is a Dataplane as the global's REST API lists it.
type globalDataplane struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// Networking is the spec, inline as the API serves it.
	Networking struct {
		Address string `json:"address"`
		Gateway struct {
			Type string            `json:"type"`
			Tags map[string]string `json:"tags"`
		} `json:"gateway"`
	} `json:"networking"`
}

func globalDataplanes(t *testing.T, g *process) []globalDataplane {
	t.Helper()
	status, body := call(t, "GET", g.apiURL+"/meshes/default/dataplanes", "")
	if status != 200 {
		t.Fatalf("GET /meshes/default/dataplanes: %d %s", status, body)
	}
	var list struct {
		Items []globalDataplane `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("GET /meshes/default/dataplanes: %v\n%s", err, body)
	}
	return list.Items
}

// TestKubernetesZoneContract is the contract of the Kubernetes zone: an
// annotated gateway pod in a mesh namespace becomes a DELEGATED Dataplane
// custom resource, reaches the global with its pod IP and zone label, its
// Service gets the service-upstream annotations (a value the user set
// stands, atoll.io/ignore opts out), and deleting the pod removes it from
// the global. The zone runs as a ServiceAccount bound to the chart's RBAC
// rules.
func TestKubernetesZoneContract(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	startKubernetesZone(t, c, "zone-1", g)

	ctx := context.Background()
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	// Opted out, and with a value of the user's: created first, so the
	// zone has seen them by the time kong-proxy is annotated.
	c.createService(t, "kong", "kong-ignored", map[string]string{kubernetes.IgnoreAnnotation: "true"})
	c.createService(t, "kong", "kong-admin", map[string]string{kubernetes.ServiceUpstream: "false"})
	c.createService(t, "kong", "kong-proxy", nil)
	c.createGatewayPod(t, "kong", "kong-0", "10.244.1.7")

	// The Dataplane custom resource, next to its pod.
	dpGVR, err := crdstore.GVR("Dataplane")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the gateway's Dataplane custom resource", func() error {
		list, err := c.dyn.Resource(dpGVR).Namespace("kong").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) != 1 {
			return fmt.Errorf("%d Dataplanes in namespace kong, want 1", len(list.Items))
		}
		obj := list.Items[0].Object
		typ := fmt.Sprint(nested(obj, "spec", "networking", "gateway", "type"))
		if typ != "DELEGATED" {
			return fmt.Errorf("Dataplane %s has gateway type %q, want DELEGATED", list.Items[0].GetName(), typ)
		}
		if owners := list.Items[0].GetOwnerReferences(); len(owners) != 1 || owners[0].Kind != "Pod" || owners[0].Name != "kong-0" {
			return fmt.Errorf("Dataplane owners = %+v, want the pod kong-0", owners)
		}
		return nil
	})

	// At the global.
	waitFor(t, 20*time.Second, "the gateway's Dataplane at the global", func() error {
		for _, dp := range globalDataplanes(t, g) {
			if !strings.Contains(dp.Name, "kong-0") {
				continue
			}
			if dp.Networking.Address != "10.244.1.7" || dp.Labels["atoll.io/zone"] != "zone-1" || dp.Networking.Gateway.Type != "DELEGATED" {
				return fmt.Errorf("global has %+v, want address 10.244.1.7, label atoll.io/zone zone-1, gateway DELEGATED", dp)
			}
			return nil
		}
		return fmt.Errorf("no Dataplane named after kong-0 at the global")
	})

	// service-upstream on the Service.
	waitFor(t, 20*time.Second, "service-upstream annotations", func() error {
		svc, err := c.client.CoreV1().Services("kong").Get(ctx, "kong-proxy", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, k := range []string{kubernetes.ServiceUpstream, kubernetes.NginxServiceUpstream} {
			if svc.Annotations[k] != "true" {
				return fmt.Errorf("Service kong/kong-proxy annotations = %v, want %s: \"true\"", svc.Annotations, k)
			}
		}
		return nil
	})

	// The user's value stands, the missing annotation is added; an opted
	// out Service is left alone until the opt-out is removed.
	waitFor(t, 20*time.Second, "kong-admin annotated, its own value kept", func() error {
		return annotationsAre(ctx, c, "kong", "kong-admin", "false", "true")
	})
	if err := annotationsAre(ctx, c, "kong", "kong-ignored", "", ""); err != nil {
		t.Errorf("opted out: %v", err)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, kubernetes.IgnoreAnnotation)
	if _, err := c.client.CoreV1().Services("kong").Patch(ctx, "kong-ignored", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "kong-ignored annotated once no longer opted out", func() error {
		return annotationsAre(ctx, c, "kong", "kong-ignored", "true", "true")
	})

	// Deleting the pod removes its Dataplane from the global.
	zero := int64(0)
	if err := c.client.CoreV1().Pods("kong").Delete(ctx, "kong-0", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the Dataplane to leave the global", func() error {
		for _, dp := range globalDataplanes(t, g) {
			if strings.Contains(dp.Name, "kong-0") {
				return fmt.Errorf("the global still lists %s", dp.Name)
			}
		}
		return nil
	})
}

// nested returns the value at path in obj, or nil.
func nested(obj map[string]any, path ...string) any {
	var v any = obj
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
