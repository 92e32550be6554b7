//go:build kind

package multicluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/atoll-mesh/atoll/test/chart"
)

// kindStep bounds one step (an image pull and a pod start, a rollout);
// kindCreate bounds creating a kind cluster.
const (
	kindStep   = 5 * time.Minute
	kindCreate = 10 * time.Minute
)

// kindCluster is one kind cluster of one node, reached with its own
// kubeconfig file.
type kindCluster struct {
	name       string // the kind cluster's name
	node       string // its node's container
	kubeconfig string
	client     *k8s.Clientset
	ip         string // the node's address on the docker network "kind"
	podSubnet  string
	apiPort    string // host port (127.0.0.1) of the API NodePort
	dnsPort    string // host port (127.0.0.1, UDP and TCP) of the DNS NodePort; "" without
}

// createKindCluster creates kind cluster name with podSubnet, the API
// NodePort mapped to a free host port and, with dns, the DNS NodePort too.
// The cluster is deleted when owner ends, unless owner failed and
// ATOLL_E2E_KEEP=1.
func createKindCluster(t *testing.T, name, podSubnet string, dns bool) *kindCluster {
	t.Helper()
	ports := stablePorts(t, 2)
	c := &kindCluster{name: name, node: name + "-control-plane", podSubnet: podSubnet, apiPort: ports[0],
		kubeconfig: filepath.Join(os.TempDir(), "atoll-e2e-"+name+".kubeconfig")}
	if dns {
		c.dnsPort = ports[1]
	}
	config := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(config, []byte(kindConfig(c.podSubnet, c.apiPort, c.dnsPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Registered before the cluster exists, so a half-created one goes too.
	t.Cleanup(func() {
		if t.Failed() {
			// What the control plane said last, before the cluster goes.
			out, _ := runErr(time.Minute, "kubectl", "--kubeconfig", c.kubeconfig, "-n", chart.Namespace, "logs",
				"-l", "app.kubernetes.io/name=atoll", "--all-containers", "--prefix", "--tail", "200")
			t.Logf("%s: the control plane's log, the end:\n%s", name, out)
		}
		if t.Failed() && os.Getenv("ATOLL_E2E_KEEP") == "1" {
			t.Logf("ATOLL_E2E_KEEP=1: kept kind cluster %s; kubectl --kubeconfig %s ...; delete it with `kind delete cluster --name %s`",
				name, c.kubeconfig, name)
			return
		}
		t.Logf("deleting kind cluster %s", name)
		if out, err := runErr(2*time.Minute, "kind", "delete", "cluster", "--name", name, "--kubeconfig", c.kubeconfig); err != nil {
			t.Errorf("`kind delete cluster --name %s` failed: %v\n%s\ndelete it by hand (docker ps shows %s)", name, err, out, c.node)
		}
		_ = os.Remove(c.kubeconfig)
	})
	t.Logf("creating kind cluster %s (a minute or two; more the first time, when kind pulls its node image)", name)
	run(t, kindCreate, "that Docker runs and has a few GB of memory free; the output of kind above says what failed",
		"kind", "create", "cluster", "--name", name, "--config", config, "--kubeconfig", c.kubeconfig, "--wait", "5m")
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatalf("reading the kubeconfig kind wrote for %s (%s): %v", name, c.kubeconfig, err)
	}
	if c.client, err = k8s.NewForConfig(cfg); err != nil {
		t.Fatalf("a client of %s: %v", name, err)
	}
	ip := strings.TrimSpace(run(t, time.Minute, "that the node container "+c.node+" is on the docker network kind (KIND_EXPERIMENTAL_DOCKER_NETWORK unset)",
		"docker", "inspect", "-f", "{{ .NetworkSettings.Networks.kind.IPAddress }}", c.node))
	if parsed := net.ParseIP(ip); parsed == nil || parsed.To4() == nil {
		t.Fatalf("node %s has no IPv4 address on the docker network kind (docker inspect said %q); the provider needs kind's default IPv4 network", c.node, ip)
	}
	c.ip = ip
	return c
}

// noKindClusters fails the test when a kind cluster of one of names
// exists: the provider never touches clusters it did not create.
func noKindClusters(t *testing.T, names ...string) {
	t.Helper()
	existing := run(t, time.Minute, "that kind works: `kind get clusters`", "kind", "get", "clusters")
	for _, line := range strings.Split(existing, "\n") {
		if name := strings.TrimSpace(line); slices.Contains(names, name) {
			t.Fatalf("a kind cluster %s exists already (kept by a run with ATOLL_E2E_KEEP=1?); delete it with `kind delete cluster --name %s` and run again", name, name)
		}
	}
}

// kubectl runs kubectl on the cluster; check says what to look at when it
// fails.
func (c *kindCluster) kubectl(t *testing.T, check string, args ...string) string {
	t.Helper()
	return run(t, kindStep+time.Minute, check, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// loadImages copies images from the host's Docker into the node.
func (c *kindCluster) loadImages(t *testing.T, images ...string) {
	t.Helper()
	for _, img := range images {
		t.Logf("%s: kind load docker-image %s", c.name, img)
		run(t, kindStep, "that `make images` built "+img+" (docker image ls)", "kind", "load", "docker-image", "--name", c.name, img)
	}
}

// exposeAPI creates the release namespace, the Secret with the API token
// the chart's pods read (api.tokenSecret) and the NodePort Service
// atoll-e2e-api on the control plane's pods of component (global, zone).
func (c *kindCluster) exposeAPI(t *testing.T, component, token string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chart.Namespace}},
		metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating namespace %s: %v", c.name, chart.Namespace, err)
	}
	if _, err := c.client.CoreV1().Secrets(chart.Namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kindAPITokenSecret},
		StringData: map[string]string{"token": token},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating Secret %s/%s: %v", c.name, chart.Namespace, kindAPITokenSecret, err)
	}
	c.createNodePort(t, chart.Namespace, "atoll-e2e-api", map[string]string{
		"app.kubernetes.io/name":      "atoll",
		"app.kubernetes.io/instance":  chart.Release,
		"app.kubernetes.io/component": component,
	}, corev1.ServicePort{Name: "api", Port: 5681, TargetPort: intstr.FromString("api"), NodePort: kindAPINodePort, Protocol: corev1.ProtocolTCP})
}

func (c *kindCluster) createNodePort(t *testing.T, namespace, name string, selector map[string]string, ports ...corev1.ServicePort) {
	t.Helper()
	if _, err := c.client.CoreV1().Services(namespace).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: selector, Ports: ports},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: creating NodePort Service %s/%s: %v", c.name, namespace, name, err)
	}
}

// helmInstall installs the chart as release atoll in atoll-system with
// values (helm flags) and waits until its workloads are ready.
func (c *kindCluster) helmInstall(t *testing.T, helm string, values []string) {
	t.Helper()
	t.Logf("%s: helm install %s %s", c.name, chart.Release, chart.Dir)
	args := append([]string{"install", chart.Release, chart.Dir, "--namespace", chart.Namespace,
		"--kubeconfig", c.kubeconfig, "--wait", "--timeout", kindStep.String()}, values...)
	run(t, kindStep+time.Minute, fmt.Sprintf("the release's pods: kubectl --kubeconfig %s -n %s get pods; kubectl ... describe pod; kubectl ... logs",
		c.kubeconfig, chart.Namespace), helm, args...)
}

// meshStanza patches the cluster's CoreDNS with the stanza the zone
// release's notes print (zone.dns.coreDNSSnippet), as a user would, and
// restarts CoreDNS; then exposes CoreDNS on the DNS NodePort and waits
// until it answers from the host over UDP and TCP.
func (c *kindCluster) meshStanza(t *testing.T, helm string) {
	t.Helper()
	ctx := context.Background()
	notes := run(t, time.Minute, "the zone release: helm --kubeconfig "+c.kubeconfig+" -n "+chart.Namespace+" status "+chart.Release,
		helm, "get", "notes", chart.Release, "--namespace", chart.Namespace, "--kubeconfig", c.kubeconfig)
	stanza, err := coreDNSStanza(notes)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	cm, err := c.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: the ConfigMap kube-system/coredns kind installs: %v", c.name, err)
	}
	if cm.Data["Corefile"] == "" {
		t.Fatalf("%s: the ConfigMap kube-system/coredns has no Corefile: %v", c.name, cm.Data)
	}
	cm.Data["Corefile"] += "\n" + stanza + "\n"
	if _, err := c.client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("%s: adding the mesh stanza to kube-system/coredns: %v", c.name, err)
	}
	check := "CoreDNS's pods: kubectl --kubeconfig " + c.kubeconfig + " -n kube-system logs deployment/coredns (a Corefile error shows there)"
	c.kubectl(t, check, "-n", "kube-system", "rollout", "restart", "deployment/coredns")
	c.kubectl(t, check, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout", kindStep.String())
	c.createNodePort(t, "kube-system", "atoll-e2e-dns", map[string]string{"k8s-app": "kube-dns"},
		corev1.ServicePort{Name: "dns-udp", Port: 53, TargetPort: intstr.FromInt32(53), NodePort: kindDNSNodePort, Protocol: corev1.ProtocolUDP},
		corev1.ServicePort{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(53), NodePort: kindDNSNodePort, Protocol: corev1.ProtocolTCP})
	waitKind(t, c.name+"'s CoreDNS answering on 127.0.0.1:"+c.dnsPort+" (UDP and TCP)", func() error {
		for _, network := range []string{"udp", "tcp"} {
			cl := &mdns.Client{Net: network, Timeout: 2 * time.Second}
			r, _, err := cl.Exchange(new(mdns.Msg).SetQuestion("kubernetes.default.svc.cluster.local.", mdns.TypeA), "127.0.0.1:"+c.dnsPort)
			if err != nil {
				return fmt.Errorf("%s: %v", network, err)
			}
			if r.Rcode != mdns.RcodeSuccess || len(r.Answer) == 0 {
				return fmt.Errorf("%s: kubernetes.default.svc.cluster.local: %s, %d answers", network, mdns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}
		return nil
	})
}

// routeTo makes the node of c send traffic for other's pods to other's
// node, on the docker network they share (Direct cross-zone traffic).
func (c *kindCluster) routeTo(t *testing.T, other *kindCluster) {
	t.Helper()
	run(t, time.Minute, "that "+c.node+" runs (docker ps)", "docker", "exec", c.node,
		"ip", "route", "replace", other.podSubnet, "via", other.ip)
}

// apiProxy serves on loopback a reverse proxy to the host port hostPort
// that adds the API token, so that the scenarios' plain requests reach
// the control plane as a caller with the token would. It returns its URL.
func apiProxy(t *testing.T, hostPort, token string) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:" + hostPort})
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "kind provider: no answer through 127.0.0.1:"+hostPort+": "+err.Error(), http.StatusBadGateway)
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitReadyz polls apiURL/readyz until it answers 200.
func waitReadyz(t *testing.T, what, apiURL string) {
	t.Helper()
	waitKind(t, what+" ready (GET /readyz)", func() error {
		if status, body := get(apiURL + "/readyz"); status != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d %s", status, body)
		}
		return nil
	})
}

// waitKind polls cond every second until it returns nil, failing the
// test with cond's last error after kindStep.
func waitKind(t *testing.T, what string, cond func() error) {
	t.Helper()
	waitUntil(t, what, kindStep, time.Second, cond)
}

// run runs a command and returns its combined output; a failure fails
// the test naming the command, its output and what to check.
func run(t *testing.T, timeout time.Duration, check, name string, args ...string) string {
	t.Helper()
	out, err := runErr(timeout, name, args...)
	if err != nil {
		t.Fatalf("`%s %s` failed: %v\n%s\ncheck: %s", name, strings.Join(args, " "), err, out, check)
	}
	return out
}

// runErr runs a command with a timeout and returns its combined output.
func runErr(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("no result within %s: %w", timeout, err)
	}
	return string(out), err
}

// randomToken is a fresh API token.
func randomToken(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// kindImageTag is the tag of the images `make images` built, from
// ATOLL_E2E_IMAGE_TAG (make e2e-kind sets it).
func kindImageTag(t *testing.T) string {
	tag := os.Getenv("ATOLL_E2E_IMAGE_TAG")
	if !regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`).MatchString(tag) {
		t.Fatalf("ATOLL_E2E_IMAGE_TAG=%q is not an image tag: set it to the tag `make images` built (make e2e-kind does)", tag)
	}
	return tag
}

// podGone waits until pod namespace/name no longer exists.
func (c *kindCluster) podGone(t *testing.T, namespace, name string) {
	t.Helper()
	waitKind(t, c.name+": pod "+namespace+"/"+name+" gone", func() error {
		_, err := c.client.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("pod %s/%s still exists", namespace, name)
		}
		return err
	})
}
