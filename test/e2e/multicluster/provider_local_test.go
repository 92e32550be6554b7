package multicluster

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/test/chart"
	"github.com/atoll-mesh/atoll/test/clusterdns"
	"github.com/atoll-mesh/atoll/test/helmbin"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// Bounds on the local provider's steps; never asserted, only waited for.
const (
	startTimeout = 2 * time.Minute
	stopGrace    = 30 * time.Second
)

// local is the local provider: every process on loopback, no container
// engine.
type local struct {
	global *localGlobal
	zones  []Cluster
}

func (l *local) Global() Global   { return l.global }
func (l *local) Zones() []Cluster { return l.zones }

// startLocal starts a global and zones zone-1..zone-n, each zone in a
// cluster of its own, and waits until every part is ready. Everything is
// stopped when the test ends.
func startLocal(t *testing.T, n int) *local {
	t.Helper()
	helm, err := helmbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	atoll := atollBin.Path(t)
	l := &local{global: startLocalGlobal(t, atoll)}
	for i := 1; i <= n; i++ {
		l.zones = append(l.zones, startLocalCluster(t, helm, atoll, l.global, i))
	}
	return l
}

// localGlobal is `atoll global` with an embedded etcd in a data directory
// of the test, on fixed ports so that it comes back where zones look for
// it.
type localGlobal struct {
	// owner is the suite's test: the process lives as long as the suite,
	// whichever scenario restarts it.
	owner   *testing.T
	atoll   string
	args    []string
	apiURL  string
	kdsAddr string
	caFile  string
	proc    *process // the running process, nil while stopped
}

func (g *localGlobal) APIURL() string { return g.apiURL }

func startLocalGlobal(t *testing.T, atoll string) *localGlobal {
	t.Helper()
	dir := t.TempDir()
	ports := stablePorts(t, 4)
	g := &localGlobal{
		owner:   t,
		atoll:   atoll,
		apiURL:  "http://127.0.0.1:" + ports[0],
		kdsAddr: "127.0.0.1:" + ports[1],
		caFile:  filepath.Join(dir, "kds-tls", "kds-ca.pem"),
		args: []string{"global", "--data-dir", dir,
			"--api-addr", "127.0.0.1:" + ports[0], "--kds-addr", "127.0.0.1:" + ports[1],
			"--etcd-client-addr", "127.0.0.1:" + ports[2], "--etcd-peer-addr", "127.0.0.1:" + ports[3]},
	}
	g.Start(t)
	return g
}

// Start runs the global on its data directory and ports and waits until it
// is ready.
func (g *localGlobal) Start(t *testing.T) {
	t.Helper()
	if g.proc != nil {
		t.Fatal("the global is already running")
	}
	g.proc = startProcess(t, g.owner, "global", g.atoll, g.args...)
	waitReady(t, "the global", g.proc.exited, g.proc.logPath, g.apiURL)
}

// Stop stops the global (SIGTERM) and waits until it has exited.
func (g *localGlobal) Stop(t *testing.T) {
	t.Helper()
	if g.proc == nil {
		t.Fatal("the global is not running")
	}
	if err := g.proc.stop(); err != nil {
		t.Fatalf("stopping the global: %v", err)
	}
	g.proc = nil
}

// issueToken has the global issue a token for zone, as an operator would
// with atollctl generate zone-token.
func (g *localGlobal) issueToken(t *testing.T, zone string) string {
	t.Helper()
	return issueZoneToken(t, g.apiURL, zone, "1h")
}

// localCluster is a kube-apiserver, the chart's zone run against it as the
// chart's ServiceAccount, and CoreDNS as its DNS.
type localCluster struct {
	zone   string
	env    *kubeenv.Env
	client *k8s.Clientset
	dns    *clusterdns.DNS
	apiURL string
	// What runs the zone's pod again: the suite's test (which the pod
	// belongs to), the binary, the rendered objects, a kubeconfig of the
	// chart's ServiceAccount, the running pod and every pod's log.
	owner      *testing.T
	atoll      string
	objs       []*unstructured.Unstructured
	kubeconfig string
	pod        *chart.Pod
	logPaths   []string
	// toGlobal is the relay the zone reaches the global through, which
	// Disconnect cuts.
	toGlobal *cutter
	// nextIP numbers the pod IPs the cluster hands out
	// (127.244.<subnet>.<n>); backends are the running backend pods by
	// namespace/name, gatewayDirs the files of gateway pods' clients.
	mu          sync.Mutex
	subnet      int
	nextIP      int
	backends    map[string]*backendPod
	gatewayDirs map[string]string
}

func (c *localCluster) Zone() string        { return c.zone }
func (c *localCluster) Kube() k8s.Interface { return c.client }
func (c *localCluster) DNSAddr() string     { return c.dns.Addr }
func (c *localCluster) ZoneAPIURL() string  { return c.apiURL }

// startLocalCluster renders the chart's zone zone-i (its token issued by
// g, g's KDS CA as global.ca.value, the injector off: there is no network
// path from this API server to a webhook), installs it on a new API server
// and runs its pod, then starts CoreDNS with `mesh` sent to the zone's DNS.
func startLocalCluster(t *testing.T, helm, atoll string, g *localGlobal, i int) *localCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	env, dyn := chart.StartCluster(ctx, t)
	zone := fmt.Sprintf("zone-%d", i)
	c := &localCluster{zone: zone, subnet: i, env: env, client: env.Clientset(t), owner: t, atoll: atoll}

	ports := stablePorts(t, 4) // the zone comes back on them
	c.apiURL = "http://127.0.0.1:" + ports[0]
	c.toGlobal = startCutter(t, "127.0.0.1:"+ports[3], g.kdsAddr)
	manifest, err := chart.Template(helm, nil,
		"--set", "mode=zone",
		"--set", "replicas=1",
		"--set", "zone.name="+zone,
		"--set", "global.address=grpcs://127.0.0.1:"+ports[3],
		"--set-file", "global.ca.value="+g.caFile,
		"--set", "zone.token.existingSecret.name=",
		"--set-string", "zone.token.value="+g.issueToken(t, zone),
		"--set", "zone.injector.enabled=false",
		"--set", "api.tls=insecure",
		"--set", "api.port="+ports[0],
		"--set", "zone.dns.port="+ports[1],
		"--set", "zone.xds.port="+ports[2],
		// A pod's proxyless client presents its token only over TLS.
		"--set", "zone.xds.tls=true",
	)
	if err != nil {
		t.Fatal(err)
	}
	if c.objs, err = chart.Objects(manifest); err != nil {
		t.Fatal(err)
	}
	chart.CreateAll(ctx, t, env.Config(), dyn, c.objs)
	c.kubeconfig = kubeenv.WriteKubeconfig(t, env.ServiceAccountConfig(t, chart.Namespace, chart.Release))
	// Registered before the first pod runs, so it runs after every pod
	// has been stopped (cleanups run last first) and the logs are
	// complete.
	t.Cleanup(func() {
		for _, logPath := range c.logPaths {
			// A request the API server refused means the chart's RBAC
			// lacks a verb the zone uses, even if the zone recovered.
			if log, err := os.ReadFile(logPath); err == nil {
				for _, line := range strings.Split(string(log), "\n") {
					if strings.Contains(line, "is forbidden") {
						t.Errorf("zone %s was refused a request under the chart's RBAC: %s", zone, line)
					}
				}
			}
			if t.Failed() {
				t.Logf("zone %s log (%s), the end:\n%s", zone, logPath, chart.Tail(logPath))
			}
		}
	})
	c.runZone(t)

	c.dns = clusterdns.Start(t, clusterdns.Config{
		Kube:        env,
		StubDomains: map[string]string{"mesh": "127.0.0.1:" + ports[1]},
	})
	return c
}

// runZone plays the kubelet for the zone's pod, as a new pod (a new
// data directory), and waits until it is ready.
func (c *localCluster) runZone(t *testing.T) {
	t.Helper()
	c.pod = chart.RunPod(c.owner, c.atoll, c.objs, "Deployment", []string{"--kubeconfig=" + c.kubeconfig}, []string{"POD_NAME=atoll-0"})
	c.logPaths = append(c.logPaths, c.pod.LogPath)
	waitReady(t, "zone "+c.zone, c.pod.Exited, c.pod.LogPath, c.apiURL)
}

// RestartZone stops the zone's pod and runs a new one, as a rollout would.
func (c *localCluster) RestartZone(t *testing.T) {
	t.Helper()
	if err := c.pod.Stop(); err != nil {
		t.Fatalf("stopping zone %s: %v", c.zone, err)
	}
	c.runZone(t)
}

// Disconnect resets the zone's connections to the global, and every new
// one until Reconnect.
func (c *localCluster) Disconnect(t *testing.T) { c.toGlobal.Cut() }

// Reconnect lets the zone reach the global again.
func (c *localCluster) Reconnect(t *testing.T) { c.toGlobal.Heal() }

func (c *localCluster) CreateNamespace(t *testing.T, name string, inMesh bool) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if inMesh {
		ns.Labels = map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled}
	}
	if _, err := c.client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating namespace %s: %v", c.zone, name, err)
	}
}

func (c *localCluster) RunGateway(t *testing.T, namespace, name string) string {
	t.Helper()
	c.createService(t, namespace, name, 80, "proxy")
	// Its own ServiceAccount, whose pod-bound tokens the gateway's proxy
	// presents.
	if _, err := c.client.CoreV1().ServiceAccounts(namespace).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating ServiceAccount %s/%s: %v", c.zone, namespace, name, err)
	}
	return c.runPod(t, namespace, name+"-0", name, name, map[string]string{kubernetes.GatewayAnnotation: kubernetes.Enabled},
		corev1.ContainerPort{Name: "proxy", ContainerPort: 8000})
}

func (c *localCluster) RunBackend(t *testing.T, namespace, name string, port int32, replicas int) {
	t.Helper()
	c.createService(t, namespace, name, port, "app")
	c.ScaleBackend(t, namespace, name, replicas)
}

// ScaleBackend plays the ReplicaSet controller and the kubelet: it deletes
// the backend's pods beyond replicas, and creates the missing ones Ready,
// each a gRPC server on its pod IP answering with the pod's name.
func (c *localCluster) ScaleBackend(t *testing.T, namespace, name string, replicas int) {
	t.Helper()
	ctx := context.Background()
	svc, err := c.client.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: backend %s/%s: %v", c.zone, namespace, name, err)
	}
	port := svc.Spec.Ports[0].Port
	for i := 0; ; i++ {
		pod := fmt.Sprintf("%s-%d", name, i)
		_, err := c.client.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
		exists := err == nil
		switch {
		case i < replicas && !exists:
			ip := c.runPod(t, namespace, pod, name, "", nil, corev1.ContainerPort{Name: "app", ContainerPort: port})
			b := startBackendPod(c.owner, pod, ip, port)
			c.mu.Lock()
			if c.backends == nil {
				c.backends = map[string]*backendPod{}
			}
			c.backends[namespace+"/"+pod] = b
			c.mu.Unlock()
			c.owner.Cleanup(b.stop)
		case i >= replicas && exists:
			zero := int64(0)
			if err := c.client.CoreV1().Pods(namespace).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				t.Fatalf("%s: deleting pod %s/%s: %v", c.zone, namespace, pod, err)
			}
			c.mu.Lock()
			b := c.backends[namespace+"/"+pod]
			delete(c.backends, namespace+"/"+pod)
			c.mu.Unlock()
			if b != nil {
				b.stop()
			}
		case i >= replicas:
			return // pods are numbered from 0 without gaps
		}
	}
}

func (c *localCluster) createService(t *testing.T, namespace, name string, port int32, targetPort string) {
	t.Helper()
	if _, err := c.client.CoreV1().Services(namespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "tcp", Port: port, TargetPort: intstr.FromString(targetPort)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating Service %s/%s: %v", c.zone, namespace, name, err)
	}
}

// runPod creates a pod labelled app: app, running as ServiceAccount sa
// (none: empty), and plays the kubelet: it gives the pod the cluster's
// next IP and marks it Ready. It returns the IP.
func (c *localCluster) runPod(t *testing.T, namespace, name, app, sa string, annotations map[string]string, port corev1.ContainerPort) string {
	t.Helper()
	ctx := context.Background()
	pod, err := c.client.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}, Annotations: annotations},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: app, Image: app + ":e2e",
			Ports: []corev1.ContainerPort{port}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("%s: creating pod %s/%s: %v", c.zone, namespace, name, err)
	}
	c.mu.Lock()
	c.nextIP++
	ip := fmt.Sprintf("127.244.%d.%d", c.subnet, c.nextIP)
	c.mu.Unlock()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := c.client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("%s: setting the status of pod %s/%s: %v", c.zone, namespace, name, err)
	}
	return ip
}

// atollBin is cmd/atoll, built once for the package.
var atollBin chart.Binary

func TestMain(m *testing.M) {
	code := m.Run()
	atollBin.Remove()
	grpcdemoBin.Remove()
	os.Exit(code)
}

// process is an atoll process the provider started itself.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // how it ended, once exited is closed
}

// startProcess runs atoll with args, its output in a file printed when the
// test has failed; it is stopped when the test ends unless it was before.
//
// owner is the test the process belongs to (its log directory and its
// stop at the end), t the one failing when it cannot start; they differ
// when a scenario restarts a process of the whole suite.
func startProcess(t, owner *testing.T, name, atoll string, args ...string) *process {
	t.Helper()
	p := &process{name: name, logPath: filepath.Join(owner.TempDir(), name+".log"), exited: make(chan struct{})}
	log, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(atoll, append(args, "--log-format", "json")...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); _ = log.Close(); close(p.exited) }()
	owner.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			if err := p.stop(); err != nil {
				owner.Error(err)
			}
		}
		if owner.Failed() {
			owner.Logf("%s log (%s), the end:\n%s", name, p.logPath, chart.Tail(p.logPath))
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit, killing the process after
// stopGrace; anything but a clean exit is an error.
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s did not exit cleanly on SIGTERM: %v", p.name, p.err)
		}
		return nil
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, stopGrace)
	}
}

// waitReady polls apiURL's /readyz until it answers 200, failing the test
// when the process exits or startTimeout passes.
func waitReady(t *testing.T, what string, exited <-chan struct{}, logPath, apiURL string) {
	t.Helper()
	deadline := time.After(startTimeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		resp, err := http.Get(apiURL + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready:\n%s", what, chart.Tail(logPath))
		case <-deadline:
			t.Fatalf("%s not ready within %s (last /readyz: %s):\n%s", what, startTimeout, last, chart.Tail(logPath))
		case <-tick.C:
		}
	}
}

// stablePorts returns n loopback ports free for TCP and UDP a moment ago,
// from below the kernel's ephemeral range (32768–60999 by default), so
// that no port the kernel hands out in the meantime takes one from a
// process that stops and starts again on it.
func stablePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	for range 1000 {
		if len(ports) == n {
			return ports
		}
		port := strconv.Itoa(20000 + rand.IntN(12000))
		if slices.Contains(ports, port) {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+port)
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = pc.Close()
		ports = append(ports, port)
	}
	t.Fatalf("fewer than %d free loopback ports in 20000-31999", n)
	return nil
}
