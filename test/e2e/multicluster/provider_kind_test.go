//go:build kind

package multicluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/test/chart"
	"github.com/atoll-mesh/atoll/test/helmbin"
)

// TestKind runs the scenarios, in order, on the kind provider: a global
// and two zones, each in a kind cluster of its own (make e2e-kind).
func TestKind(t *testing.T) {
	p := startKind(t, 2)
	runScenarios(t, p)
}

// kindProvider is the kind provider: kind clusters atoll-global and
// atoll-zone-1..n on one Docker engine, the images of `make images` loaded
// into them, the chart installed with helm.
type kindProvider struct {
	global *kindGlobal
	zones  []Cluster
}

var (
	_ Provider = (*kindProvider)(nil)
	_ Global   = (*kindGlobal)(nil)
	_ Cluster  = (*kindZone)(nil)
)

func (k *kindProvider) Global() Global   { return k.global }
func (k *kindProvider) Zones() []Cluster { return k.zones }

// startKind creates the clusters, installs the global and the zones
// zone-1..zone-n and returns once every zone is ready. The clusters are
// deleted when the test ends (kept on a failure with ATOLL_E2E_KEEP=1).
func startKind(t *testing.T, n int) *kindProvider {
	t.Helper()
	for _, tool := range []string{"docker", "kind", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the kind provider needs %s on PATH: %v; test/e2e/multicluster/kind/check.sh says what is missing and how to install it", tool, err)
		}
	}
	helm, err := helmbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	tag := kindImageTag(t)
	names := []string{"atoll-global"}
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("atoll-zone-%d", i))
	}
	noKindClusters(t, names...)
	g := startKindGlobal(t, helm, tag)
	p := &kindProvider{global: g}
	var zones []*kindZone
	for i := 1; i <= n; i++ {
		z := startKindZone(t, helm, tag, g, i)
		for _, other := range zones {
			z.cl.routeTo(t, other.cl)
			other.cl.routeTo(t, z.cl)
		}
		zones = append(zones, z)
		p.zones = append(p.zones, z)
	}
	return p
}

// kindGlobal is the chart's global (a StatefulSet of one pod whose
// PersistentVolumeClaim keeps its state) in the cluster atoll-global, its
// API reached through a NodePort and a loopback proxy adding the token.
type kindGlobal struct {
	cl     *kindCluster
	apiURL string
	// kdsAddress is what zones dial (global.address): the node's address
	// on the docker network and the KDS NodePort.
	kdsAddress string
}

func (g *kindGlobal) APIURL() string { return g.apiURL }

func startKindGlobal(t *testing.T, helm, tag string) *kindGlobal {
	t.Helper()
	cl := createKindCluster(t, "atoll-global", "10.10.0.0/16", false)
	cl.loadImages(t, "atoll:"+tag)
	token := randomToken(t)
	cl.exposeAPI(t, "global", token)
	cl.helmInstall(t, helm, globalValues(tag, cl.ip))
	g := &kindGlobal{cl: cl, apiURL: apiProxy(t, cl.apiPort, token), kdsAddress: fmt.Sprintf("grpcs://%s:%d", cl.ip, kindKDSNodePort)}
	waitReadyz(t, "the global", g.apiURL)
	// The clusters' pods reach each other directly (routes between the
	// nodes): there is no zone ingress to go through.
	if status, body := call(t, "PUT", g.apiURL+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status/100 != 2 {
		t.Fatalf("making the mesh default Direct at the global: %d %s", status, body)
	}
	return g
}

// Stop scales the global's StatefulSet to zero and returns once its pod
// is gone; its claim stays.
func (g *kindGlobal) Stop(t *testing.T) {
	t.Helper()
	t.Logf("stopping the global (statefulset/%s to 0 replicas)", chart.Release)
	g.cl.kubectl(t, "the global's StatefulSet: kubectl --kubeconfig "+g.cl.kubeconfig+" -n "+chart.Namespace+" get statefulset",
		"-n", chart.Namespace, "scale", "statefulset/"+chart.Release, "--replicas=0")
	g.cl.podGone(t, chart.Namespace, chart.Release+"-0")
}

// Start scales the global's StatefulSet back to one and returns once it
// answers ready through its NodePort.
func (g *kindGlobal) Start(t *testing.T) {
	t.Helper()
	t.Logf("starting the global (statefulset/%s to 1 replica)", chart.Release)
	check := "the global's pod: kubectl --kubeconfig " + g.cl.kubeconfig + " -n " + chart.Namespace + " describe pod " + chart.Release + "-0"
	g.cl.kubectl(t, check, "-n", chart.Namespace, "scale", "statefulset/"+chart.Release, "--replicas=1")
	g.cl.kubectl(t, check, "-n", chart.Namespace, "rollout", "status", "statefulset/"+chart.Release, "--timeout", kindStep.String())
	waitReadyz(t, "the global", g.apiURL)
}

// issueToken has the global issue a token for zone, as
// `atollctl generate zone-token` would.
func (g *kindGlobal) issueToken(t *testing.T, zone string) string {
	t.Helper()
	return issueZoneToken(t, g.apiURL, zone, "2h")
}

// kindZone is the chart's zone (a Deployment of one pod, the sidecar
// injector on) in the cluster atoll-zone-i, with CoreDNS sending `mesh`
// to the zone's DNS Service.
type kindZone struct {
	zone     string
	cl       *kindCluster
	apiURL   string
	globalIP string
}

func (z *kindZone) Zone() string        { return z.zone }
func (z *kindZone) Kube() k8s.Interface { return z.cl.client }
func (z *kindZone) DNSAddr() string     { return "127.0.0.1:" + z.cl.dnsPort }
func (z *kindZone) ZoneAPIURL() string  { return z.apiURL }

func startKindZone(t *testing.T, helm, tag string, g *kindGlobal, i int) *kindZone {
	t.Helper()
	zone := fmt.Sprintf("zone-%d", i)
	cl := createKindCluster(t, "atoll-"+zone, fmt.Sprintf("10.%d.0.0/16", 10+i), true)
	cl.loadImages(t, "atoll:"+tag, "atoll-init:"+tag, "atoll-sidecar:"+tag)
	status, ca := get(g.apiURL + "/kds-ca.pem")
	if status != http.StatusOK || !strings.HasPrefix(ca, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("the global's KDS CA: GET /kds-ca.pem: %d %s", status, ca)
	}
	caFile := filepath.Join(t.TempDir(), "kds-ca.pem")
	if err := os.WriteFile(caFile, []byte(ca), 0o644); err != nil {
		t.Fatal(err)
	}
	token := randomToken(t)
	cl.exposeAPI(t, "zone", token)
	cl.helmInstall(t, helm, zoneValues(tag, zone, g.kdsAddress, caFile, g.issueToken(t, zone)))
	z := &kindZone{zone: zone, cl: cl, apiURL: apiProxy(t, cl.apiPort, token), globalIP: g.cl.ip}
	waitReadyz(t, zone, z.apiURL)
	cl.meshStanza(t, helm)
	return z
}

// RestartZone rolls the zone's Deployment (a new pod) and returns once
// the new pod is ready and answers through the NodePort.
func (z *kindZone) RestartZone(t *testing.T) {
	t.Helper()
	t.Logf("%s: restarting the zone (rollout restart deployment/%s)", z.zone, chart.Release)
	check := "the zone's pods: kubectl --kubeconfig " + z.cl.kubeconfig + " -n " + chart.Namespace + " get pods; ... logs deployment/" + chart.Release
	z.cl.kubectl(t, check, "-n", chart.Namespace, "rollout", "restart", "deployment/"+chart.Release)
	z.cl.kubectl(t, check, "-n", chart.Namespace, "rollout", "status", "deployment/"+chart.Release, "--timeout", kindStep.String())
	waitReadyz(t, z.zone, z.apiURL)
}

// Disconnect drops, on the zone's node, every packet forwarded to or from
// the global's node: the zone's KDS connection stalls and new ones fail,
// while the cluster and its pods keep running. Reconnect removes the
// rules.
func (z *kindZone) Disconnect(t *testing.T) {
	t.Helper()
	t.Logf("%s: cutting the node %s off from the global's node %s", z.zone, z.cl.node, z.globalIP)
	z.iptables(t, "-I")
}

func (z *kindZone) Reconnect(t *testing.T) {
	t.Helper()
	t.Logf("%s: healing the cut from the global's node %s", z.zone, z.globalIP)
	z.iptables(t, "-D")
}

// iptables inserts (-I) or deletes (-D) the two FORWARD rules of the cut.
func (z *kindZone) iptables(t *testing.T, op string) {
	t.Helper()
	for _, dir := range []string{"-d", "-s"} {
		args := []string{"exec", z.cl.node, "iptables", op, "FORWARD"}
		if op == "-I" {
			args = append(args, "1")
		}
		run(t, time.Minute, "that the node container "+z.cl.node+" runs and has iptables (kind's node images do)",
			"docker", append(args, dir, z.globalIP+"/32", "-j", "DROP")...)
	}
}

// CallFromGateway runs curl n times in the gateway pod's client
// container, beside Kong: its requests to http://meshName:port/ go through
// the pod's injected sidecar, as Kong's own would. It returns the pod
// names the backend answered with.
func (z *kindZone) CallFromGateway(t *testing.T, namespace, name, meshName string, port int32, n int) ([]string, error) {
	t.Helper()
	if !strings.HasSuffix(meshName, ".mesh") {
		t.Fatalf("CallFromGateway: %q is not a .mesh name", meshName)
	}
	url := fmt.Sprintf("http://%s:%d/", meshName, port)
	var pods []string
	for range n {
		out, err := runErr(time.Minute, "kubectl", "--kubeconfig", z.cl.kubeconfig, "-n", namespace, "exec", name+"-0", "-c", "client", "--",
			"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url)
		if err != nil {
			return pods, fmt.Errorf("%s: curl %s from %s/%s-0: %v: %s", z.zone, url, namespace, name, err, strings.TrimSpace(out))
		}
		out = strings.TrimRight(out, "\n")
		cut := strings.LastIndex(out, "\n")
		if cut < 0 {
			return pods, fmt.Errorf("%s: curl %s from %s/%s-0 printed no status: %q", z.zone, url, namespace, name, out)
		}
		body, code := strings.TrimSpace(out[:cut]), out[cut+1:]
		if code != "200" {
			return pods, fmt.Errorf("%s: %s from the gateway answered %s: %s", z.zone, url, code, body)
		}
		if body == "" || strings.ContainsAny(body, " \t\n") {
			return pods, fmt.Errorf("%s: %s from the gateway answered %q, not a pod name", z.zone, url, body)
		}
		pods = append(pods, body)
	}
	return pods, nil
}

// waitPods waits until the pods labelled app: app in namespace are exactly
// replicas, all Ready and none terminating.
func (c *kindCluster) waitPods(t *testing.T, namespace, app string, replicas int) {
	t.Helper()
	waitKind(t, fmt.Sprintf("%s: %d Ready pods of %s/%s", c.name, replicas, namespace, app), func() error {
		pods, err := c.client.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, cond := range p.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" && p.DeletionTimestamp == nil {
					ready++
				}
			}
		}
		if len(pods.Items) != replicas || ready != replicas {
			return fmt.Errorf("%d pods, %d Ready (kubectl --kubeconfig %s -n %s describe pods -l app=%s)",
				len(pods.Items), ready, c.kubeconfig, namespace, app)
		}
		return nil
	})
}
