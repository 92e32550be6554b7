package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/kubernetes/inject"
)

// TestInjectedGatewayTrafficLeavesThroughTheMesh follows the README's
// Kubernetes walk-through end to end, with every piece real but one: a
// Kubernetes zone serves the sidecar injector, which the real API server
// calls; a gateway pod created through the API comes back injected; the
// test then plays the kubelet and runs that pod as written — the init
// container's command installs the transparent proxy in a network
// namespace the test creates, and the sidecar container's command (atoll
// sidecar, with the container's environment, as the proxy's UID) runs in
// it with the pod's projected ServiceAccount token.
//
// The one stand-in is Envoy, which this machine does not have:
// test/envoystandin reads the bootstrap atoll sidecar writes, fetches its
// configuration through the sidecar's xDS relay (so the zone checks the
// pod's token with a TokenReview) and binds the listeners it is given,
// reporting each connection with its original destination, as Envoy's
// outbound listener hands it to the listener of that address. So the test
// shows: the zone's xDS CA reaching the sidecar, whose relay connects over
// TLS; the gateway's lookup of backend.mesh answered with the global's
// VIP through the sidecar's DNS proxy and the zone's DNS; other names
// answered by the cluster's DNS; the gateway's connection to the VIP
// redirected to the sidecar, whose configuration from the zone has a
// listener for the VIP and a cluster for backend in zone-2; and the
// sidecar stopping cleanly.
func TestInjectedGatewayTrafficLeavesThroughTheMesh(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the sidecar test creates a network namespace and runs the sidecar as the proxy's UID: it needs root")
	}
	standin := filepath.Join(binDir, "envoystandin")
	if b, err := exec.Command("go", "build", "-o", standin, "../envoystandin").CombinedOutput(); err != nil {
		t.Fatalf("building the Envoy stand-in: %v\n%s", err, b)
	}
	// The sidecar runs as the proxy's UID: it must reach the binaries.
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}

	// The pod's network: a namespace with a veth to the host, the host's
	// end .1 (where the zone's xDS and DNS servers and the
	// cluster's DNS listen, as Services would be reached), the pod's .7.
	// A /24 of its own per test process, so a namespace left by a killed
	// run cannot take its replies.
	subnet := fmt.Sprintf("10.250.%d", os.Getpid()%250)
	hostIP, podIP := subnet+".1", subnet+".7"
	if out := sh(t, "ip", "-4", "-o", "addr", "show", "to", subnet+".0/24"); strings.TrimSpace(out) != "" {
		t.Fatalf("%s.0/24 is already on this host (a namespace left by an earlier run? ip netns list):\n%s", subnet, out)
	}
	ns := fmt.Sprintf("atoll-e2e-sc-%d", os.Getpid())
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { sh(t, "ip", "netns", "del", ns) })
	veth := fmt.Sprintf("ats%d", os.Getpid()%100000)
	sh(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "addr", "add", hostIP+"/24", "dev", veth)
	sh(t, "ip", "link", "set", veth, "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", podIP+"/24", "dev", "eth0")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", hostIP)
	// Dual stack: the pod has an IPv6 address too, so the init container
	// installs the IPv6 rules and the sidecar gives Envoy an IPv6 outbound
	// listener.
	subnet6 := fmt.Sprintf("fd00:250:%x", os.Getpid()%65536)
	sh(t, "ip", "addr", "add", subnet6+"::1/64", "dev", veth, "nodad")
	sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", subnet6+"::7/64", "dev", "eth0", "nodad")
	sh(t, "ip", "netns", "exec", ns, "ip", "-6", "route", "add", "default", "via", subnet6+"::1")

	// The cluster's DNS, on the host's end: the pod's resolv.conf names it
	// ("ip netns exec" mounts /etc/netns/<ns>/resolv.conf over the
	// namespace's processes' /etc/resolv.conf).
	clusterDNS := startClusterDNS(t, hostIP+":53")
	if err := os.MkdirAll(filepath.Join("/etc/netns", ns), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/etc/netns", ns)) })
	if err := os.WriteFile(filepath.Join("/etc/netns", ns, "resolv.conf"),
		[]byte("nameserver "+hostIP+"\nsearch kong.svc.cluster.local svc.cluster.local cluster.local\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The global, zone-2 (universal) running backend, and zone-1 in
	// Kubernetes mode with the injector; its xDS and DNS servers listen
	// where the pod reaches them.
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	if status, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	xdsAddr := onHost(t, hostIP)
	dnsAddr := onHost(t, hostIP)
	injectorAddr := freePort(t)
	z1 := startKubernetesZone(t, c, "zone-1", g,
		// xDS over TLS, as the README advises: the injector hands the
		// zone's CA to the sidecar, whose relay verifies the zone with it.
		"--xds-addr", xdsAddr, "--xds-tls", "--xds-tls-san", hostIP, "--dns-addr", dnsAddr,
		"--injector-addr", injectorAddr, "--injector-webhook-name", inject.DefaultWebhookName,
		"--injector-xds-address", xdsAddr, "--injector-dns-address", dnsAddr,
		"--injector-sidecar-image", "atoll-sidecar:e2e", "--injector-init-image", "atoll-init:e2e")

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("zone-1's log:\n%s", z1.logs.String())
		}
	})
	ctx := context.Background()
	url := "https://" + injectorAddr + inject.Path
	if _, err := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx,
		inject.WebhookConfiguration(inject.DefaultWebhookName, admissionregistrationv1.WebhookClientConfig{URL: &url}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	if _, err := c.client.CoreV1().ServiceAccounts("kong").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kong"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createService(t, "kong", "kong-proxy", nil)

	// The gateway pod, created through the API: the API server calls the
	// zone's webhook (once it has picked the configuration and the zone
	// has put its CA in the caBundle).
	pod := createInjectedPod(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "kong-0", Labels: map[string]string{"app": "kong"},
			Annotations: map[string]string{kubernetes.GatewayAnnotation: kubernetes.Enabled}},
		Spec: corev1.PodSpec{ServiceAccountName: "kong", Containers: []corev1.Container{{Name: "proxy", Image: "kong:3.9",
			Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8000}}}}},
	})
	initC, side := podContainer(pod.Spec.InitContainers, inject.InitContainerName), podContainer(pod.Spec.InitContainers, inject.SidecarContainerName)
	if initC == nil || side == nil {
		t.Fatalf("injected pod has init %v sidecar %v", initC, side)
	}
	if ca := envOf(side, inject.EnvXDSCA); !strings.Contains(ca, "BEGIN CERTIFICATE") {
		t.Errorf("the sidecar's %s = %q, want the zone's xDS CA", inject.EnvXDSCA, ca)
	}
	if !strings.Contains(strings.Join(initC.Args, " "), "--redirect-inbound=false") {
		t.Errorf("the gateway's init container runs %q, want inbound redirection off", initC.Args)
	}
	// The kubelet's part: the pod runs at podIP and is ready.
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	pod, err := c.client.CoreV1().Pods("kong").UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The init container: its command, as the injection wrote it.
	if out := sh(t, append([]string{"ip", "netns", "exec", ns, filepath.Join(binDir, initC.Command[0])}, initC.Args...)...); !strings.Contains(out, "# IPv6: the namespace has "+subnet6+"::7") {
		t.Errorf("the init container did not take the pod's IPv6 address into account:\n%s", out)
	}

	// The projected token the kubelet would mount: audience atoll-xds,
	// bound to the pod.
	expiry := int64(inject.TokenExpiration)
	tr, err := c.client.CoreV1().ServiceAccounts("kong").CreateToken(ctx, "kong", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{inject.TokenAudience}, ExpirationSeconds: &expiry,
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The pod's volumes, readable by the proxy's UID (t.TempDir's parent
	// is not).
	podDir, err := os.MkdirTemp("", "atoll-e2e-pod-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(podDir) })
	os.Chmod(podDir, 0o755)
	tokenFile := filepath.Join(podDir, "token")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(podDir, "run") // the emptyDir
	if err := os.Mkdir(runDir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(runDir, 0o777)

	// The sidecar container: its command and environment as injected, the
	// downward API resolved, the volumes' paths where this test keeps them,
	// and the stand-in for Envoy.
	env := []string{"PATH=" + os.Getenv("PATH"), "ATOLL_ENVOY_BINARY=" + standin, "ATOLL_DRAIN_DURATION=1s"}
	for _, e := range side.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				v = pod.Name
			case "metadata.namespace":
				v = pod.Namespace
			default:
				t.Fatalf("sidecar env %s reads field %s, which this test does not resolve", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		}
		switch e.Name {
		case inject.EnvTokenFile:
			v = tokenFile
		case inject.EnvRunDir:
			v = runDir
		}
		env = append(env, e.Name+"="+v)
	}
	uid := fmt.Sprint(*side.SecurityContext.RunAsUser)
	args := append([]string{"netns", "exec", ns, "setpriv", "--reuid", uid, "--regid", uid, "--clear-groups",
		filepath.Join(binDir, side.Command[0])}, side.Command[1:]...)
	sc := startSidecar(t, env, args)

	// The stand-in's configuration, fetched through the relay with the
	// pod's token: the VIP's listener and backend's cluster.
	var vip string
	waitFor(t, syncWait, "backend's VIP at the global", func() error {
		if vip, _ = vipOf(t, g.apiURL, "backend"); vip == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	var vipListener string
	waitFor(t, syncWait, "the sidecar's listener for backend's VIP and its cluster", func() error {
		if sc.exited() {
			t.Fatalf("the sidecar exited:\n%s", sc.output())
		}
		listeners, clusters := sc.resources()
		vipListener = ""
		for _, l := range listeners {
			if strings.HasPrefix(l, "outbound:"+vip+":") {
				vipListener = l
			}
		}
		hasCluster := false
		for _, cl := range clusters {
			hasCluster = hasCluster || strings.Contains(cl, "backend")
		}
		if vipListener == "" || !hasCluster {
			return fmt.Errorf("listeners %v clusters %v", listeners, clusters)
		}
		return nil
	})
	if node := resource.DefaultMesh + "." + kubernetes.DataplaneName("kong", "kong-0"); sc.node() != node {
		t.Errorf("the stand-in ran as node %q, want %s", sc.node(), node)
	}

	// DNS from the gateway (any UID but the proxy's), to the cluster DNS
	// Service IP as the gateway's resolver would send it: .mesh names
	// answered by the zone, others by the cluster's DNS, through the
	// sidecar.
	for _, network := range []string{"udp", "tcp"} {
		if got := lookupInNetns(t, ns, network, "10.96.0.10:53", "backend.mesh."); got != vip {
			t.Errorf("%s lookup of backend.mesh from the pod = %q, want the global's VIP %s", network, got, vip)
		}
		if got := lookupInNetns(t, ns, network, "10.96.0.10:53", "kubernetes.default.svc.cluster.local."); got != clusterDNS {
			t.Errorf("%s lookup of kubernetes.default.svc.cluster.local from the pod = %q, want the cluster DNS's %s", network, got, clusterDNS)
		}
	}

	// Over IPv6 too: a lookup sent to an IPv6 resolver address reaches the
	// DNS proxy on [::1], and an IPv6 connection reaches Envoy's IPv6
	// outbound listener, which passes it through (no listener has that
	// address).
	if got := lookupInNetns(t, ns, "udp", "["+subnet6+"::a]:53", "backend.mesh."); got != vip {
		t.Errorf("IPv6 lookup of backend.mesh from the pod = %q, want the global's VIP %s", got, vip)
	}
	target6 := "[" + subnet6 + "::99]:8080"
	inNetns(t, ns, func() {
		c6, err := net.DialTimeout("tcp", target6, 5*time.Second)
		if err != nil {
			t.Fatalf("connecting to %s from the pod: %v", target6, err)
		}
		c6.Close()
	})
	waitFor(t, 10*time.Second, "the stand-in's report of the connection to "+target6, func() error {
		if cluster, ok := sc.accepted(target6, "outbound-ipv6"); !ok || cluster != "outbound:passthrough" {
			return fmt.Errorf("not yet (%q)", cluster)
		}
		return nil
	})

	// The gateway's connection to the VIP is redirected to the sidecar's
	// outbound port, and handed to the VIP's listener.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(vipListener, "outbound:"))
	target := net.JoinHostPort(vip, port)
	var conn net.Conn
	inNetns(t, ns, func() {
		if conn, err = net.DialTimeout("tcp", target, 5*time.Second); err != nil {
			t.Fatalf("connecting to %s from the pod: %v", target, err)
		}
	})
	conn.Close()
	var toCluster string
	waitFor(t, 10*time.Second, "the stand-in's report of the connection to "+target, func() error {
		var ok bool
		if toCluster, ok = sc.accepted(target, vipListener); !ok {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if _, clusters := sc.resources(); toCluster == "" || !slices.Contains(clusters, toCluster) {
		t.Errorf("the VIP's listener sends to cluster %q, want one of the sidecar's clusters %v", toCluster, clusters)
	}

	// Stopping: the sidecar drains, stops Envoy and exits 0.
	if err := sc.stop(); err != nil {
		t.Errorf("the sidecar did not stop cleanly: %v\n%s", err, sc.output())
	}
}

// onHost is an address on ip with a port free there a moment ago.
func onHost(t *testing.T, ip string) string {
	t.Helper()
	for range 100 {
		_, port, _ := net.SplitHostPort(freePort(t))
		if addr := net.JoinHostPort(ip, port); bindable(addr) {
			return addr
		}
	}
	t.Fatalf("no free port on %s", ip)
	return ""
}

// startClusterDNS serves, at addr, the cluster's DNS stand-in: every A
// question answered with 10.96.0.1. It returns that address.
func startClusterDNS(t *testing.T, addr string) string {
	t.Helper()
	const answer = "10.96.0.1"
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Qtype == mdns.TypeA {
			rr, _ := mdns.NewRR(q.Name + " 30 IN A " + answer)
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &mdns.Server{Addr: addr, Net: network, Handler: handler}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			t.Fatalf("cluster DNS on %s/%s: %v", addr, network, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return answer
}

// lookupInNetns asks server for name's A record from a socket in ns and
// returns the first address ("" for none).
func lookupInNetns(t *testing.T, ns, network, server, name string) string {
	t.Helper()
	var conn net.Conn
	inNetns(t, ns, func() {
		var err error
		if conn, err = net.DialTimeout(network, server, 2*time.Second); err != nil {
			t.Fatalf("%s to %s from namespace %s: %v", network, server, ns, err)
		}
	})
	defer conn.Close()
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.ExchangeWithConn(q, &mdns.Conn{Conn: conn})
	if err != nil {
		t.Errorf("%s lookup of %s: %v", network, name, err)
		return ""
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// createInjectedPod creates p until the API server, once it calls the
// webhook, returns it injected.
func createInjectedPod(t *testing.T, c *kubeCluster, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, syncWait, true, func(ctx context.Context) (bool, error) {
		created, err := c.client.CoreV1().Pods(p.Namespace).Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			last = err // failurePolicy Fail: refused while the caBundle lacks the zone's CA
			return false, nil
		}
		if podContainer(created.Spec.InitContainers, inject.SidecarContainerName) != nil {
			got = created
			return true, nil
		}
		last = fmt.Errorf("created without the sidecar")
		zero := int64(0)
		return false, c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	if err != nil {
		t.Fatalf("pod %s/%s never came back injected: %v (last: %v)", p.Namespace, p.Name, err, last)
	}
	return got
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func podContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// sidecarProcess is a running atoll sidecar with the Envoy stand-in. Its
// output (the sidecar's log and the stand-in's lines, which share the
// container's stdout and stderr) goes to a file, so nothing waits on a
// pipe a child still holds.
type sidecarProcess struct {
	cmd  *exec.Cmd
	out  string // the output file
	done chan error
}

// standinLine is one line the stand-in prints (test/envoystandin).
type standinLine struct {
	Event       string   `json:"event"`
	Node        string   `json:"node"`
	TypeURL     string   `json:"type_url"`
	Resources   []string `json:"resources"`
	Removed     []string `json:"removed"`
	Listener    string   `json:"listener"`
	OriginalDst string   `json:"original_dst"`
	HandedTo    string   `json:"handed_to"`
	ToCluster   string   `json:"to_cluster"`
}

func startSidecar(t *testing.T, env, args []string) *sidecarProcess {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "sidecar-output-")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := &sidecarProcess{out: out.Name(), done: make(chan error, 1)}
	p.cmd = exec.Command("ip", args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the sidecar: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.exited() {
			p.cmd.Process.Kill() // Envoy (the stand-in) dies with it (PR_SET_PDEATHSIG)
			<-p.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("the sidecar's output:\n%s", p.output())
		}
	})
	return p
}

func (p *sidecarProcess) output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// lines are the stand-in's lines so far.
func (p *sidecarProcess) lines() []standinLine {
	var out []standinLine
	for _, l := range strings.Split(p.output(), "\n") {
		var sl standinLine
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &sl) == nil && sl.Event != "" {
			out = append(out, sl)
		}
	}
	return out
}

// resources are the listeners' and clusters' names the stand-in holds:
// the incremental responses applied in order.
func (p *sidecarProcess) resources() (listeners, clusters []string) {
	held := map[string]map[string]bool{}
	for _, l := range p.lines() {
		if l.Event != "response" {
			continue
		}
		if held[l.TypeURL] == nil {
			held[l.TypeURL] = map[string]bool{}
		}
		for _, r := range l.Resources {
			held[l.TypeURL][r] = true
		}
		for _, r := range l.Removed {
			delete(held[l.TypeURL], r)
		}
	}
	for name := range held["type.googleapis.com/envoy.config.listener.v3.Listener"] {
		listeners = append(listeners, name)
	}
	for name := range held["type.googleapis.com/envoy.config.cluster.v3.Cluster"] {
		clusters = append(clusters, name)
	}
	return listeners, clusters
}

// accepted is the cluster the stand-in's listener handed a connection to
// dst to, by way of listener ("" when it has not seen one).
func (p *sidecarProcess) accepted(dst, listener string) (string, bool) {
	for _, l := range p.lines() {
		if l.Event == "accepted" && l.OriginalDst == dst && l.HandedTo == listener {
			return l.ToCluster, true
		}
	}
	return "", false
}

func (p *sidecarProcess) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err // for stop and the cleanup
		return true
	default:
		return false
	}
}

// node is the node.id the stand-in started with.
func (p *sidecarProcess) node() string {
	for _, l := range p.lines() {
		if l.Event == "started" {
			return l.Node
		}
	}
	return ""
}

// stop sends SIGTERM to the sidecar ("ip netns exec" and setpriv exec it,
// so the signal reaches atoll sidecar) and waits.
func (p *sidecarProcess) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("still running 30s after SIGTERM")
	}
}
