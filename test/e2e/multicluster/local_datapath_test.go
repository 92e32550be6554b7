package multicluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/test/chart"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// The local provider's data path. Pods get loopback addresses
// (127.244.<cluster>.<n>), so what runs "in" a pod listens on its pod IP:
// each backend pod is a real gRPC server answering with its pod's name,
// and a gateway's requests are made by grpc-go's own xDS client
// (test/sample/grpcdemo) started, as the gateway's pod would run it, from
// the bootstrap the zone serves for the pod's Dataplane, presenting the
// pod's projected ServiceAccount token over TLS.

// grpcdemoBin is test/sample/grpcdemo, built once for the package.
var grpcdemoBin = chart.Binary{Package: "github.com/atoll-mesh/atoll/test/sample/grpcdemo"}

// backendPod is a backend pod's gRPC server.
type backendPod struct {
	srv *grpc.Server
}

type answerer struct {
	testgrpc.UnimplementedTestServiceServer
	pod string
}

func (a answerer) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: a.pod}, nil
}

// startBackendPod serves gRPC on ip:port, answering with pod's name, until
// stopped or the suite ends.
func startBackendPod(t *testing.T, pod, ip string, port int32) *backendPod {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		t.Fatalf("backend pod %s on %s: %v", pod, ip, err)
	}
	b := &backendPod{srv: grpc.NewServer()}
	testgrpc.RegisterTestServiceServer(b.srv, answerer{pod: pod})
	go b.srv.Serve(ln)
	return b
}

func (b *backendPod) stop() { b.srv.Stop() }

// gatewayCallTimeout bounds the gateway's requests of one CallFromGateway,
// the xDS handshake included; only waited for.
const gatewayCallTimeout = 30 * time.Second

// answeredBy is grpcdemo's line for an RPC that was answered.
var answeredBy = regexp.MustCompile(`(?m): answered by (\S+)$`)

// CallFromGateway runs grpc-go's xDS client as the gateway's pod would:
// with the pod's projected ServiceAccount token (audience atoll-xds, bound
// to the pod, written where the kubelet would), the zone's xDS CA, and the
// bootstrap the zone serves for the pod's Dataplane; it makes n RPCs to
// xds:///meshName:port on one channel.
func (c *localCluster) CallFromGateway(t *testing.T, namespace, name, meshName string, port int32, n int) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gatewayCallTimeout)
	defer cancel()
	pod := name + "-0"
	dir := c.gatewayDir(namespace, pod)
	p, err := c.client.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("%s: gateway pod %s/%s: %v", c.zone, namespace, pod, err)
	}
	expiry := int64(3600)
	tr, err := c.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, p.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{kubernetes.ProxyAudience}, ExpirationSeconds: &expiry,
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: p.UID},
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("%s: a token of gateway pod %s/%s: %v", c.zone, namespace, pod, err)
	}
	token, ca, bootstrap := filepath.Join(dir, "token"), filepath.Join(dir, "xds-ca.pem"), filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(token, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	// Fetched on every call: a restarted zone pod has a new xDS CA.
	if err := fetch(ctx, c.apiURL+"/xds-ca.pem", ca); err != nil {
		t.Fatalf("%s: the zone's xDS CA: %v", c.zone, err)
	}
	q := url.Values{"kind": {"proxyless"}, "ca-file": {ca}, "token-file": {token}}
	dp := kubernetes.DataplaneName(namespace, pod)
	if err := fetch(ctx, c.apiURL+"/meshes/"+resource.DefaultMesh+"/dataplanes/"+dp+"/bootstrap?"+q.Encode(), bootstrap); err != nil {
		return nil, fmt.Errorf("the bootstrap of Dataplane %s: %v", dp, err)
	}
	cmd := exec.CommandContext(ctx, grpcdemoBin.Path(t), "call", "-bootstrap", bootstrap, "-n", fmt.Sprint(n), fmt.Sprintf("xds:///%s:%d", meshName, port))
	cmd.Env = append(os.Environ(), "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true")
	out, err := cmd.CombinedOutput()
	var pods []string
	for _, m := range answeredBy.FindAllSubmatch(out, -1) {
		pods = append(pods, string(m[1]))
	}
	if err != nil || len(pods) != n {
		return pods, fmt.Errorf("grpcdemo call: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return pods, nil
}

// gatewayDir is where the files of a gateway pod's client are kept.
func (c *localCluster) gatewayDir(namespace, pod string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := namespace + "/" + pod
	if c.gatewayDirs == nil {
		c.gatewayDirs = map[string]string{}
	}
	if c.gatewayDirs[key] == "" {
		c.gatewayDirs[key] = c.owner.TempDir()
	}
	return c.gatewayDirs[key]
}

// fetch writes the body of a 200 answer to GET u into file.
func fetch(ctx context.Context, u, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return os.WriteFile(file, body, 0o644)
}

// cutter is a TCP relay in front of the global's KDS port through which a
// zone reaches the global: Cut resets every connection through it and
// every new one (as a firewall rejecting the traffic would), Heal lets
// connections through again.
type cutter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

// startCutter relays addr (a stable loopback address) to target until the
// test ends.
func startCutter(t *testing.T, addr, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the relay to the global on %s: %v", addr, err)
	}
	c := &cutter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() {
		ln.Close()
		c.Cut()
	})
	go c.serve()
	return c
}

func (c *cutter) serve() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		go c.relay(in)
	}
}

// relay copies in to the target and back, unless the cut is on.
func (c *cutter) relay(in net.Conn) {
	c.mu.Lock()
	cut := c.cut
	if !cut {
		c.conns[in] = struct{}{}
	}
	c.mu.Unlock()
	if cut {
		reset(in)
		return
	}
	out, err := net.Dial("tcp", c.target)
	if err != nil {
		c.drop(in)
		return
	}
	c.mu.Lock()
	if c.cut {
		c.mu.Unlock()
		reset(out)
		c.drop(in)
		return
	}
	c.conns[out] = struct{}{}
	c.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(out, in); done <- struct{}{} }()
	go func() { io.Copy(in, out); done <- struct{}{} }()
	<-done
	c.drop(in)
	c.drop(out)
}

func (c *cutter) drop(conn net.Conn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
	reset(conn)
}

// reset closes conn with a RST rather than a FIN.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Cut resets every connection through the relay, and every new one until
// Heal.
func (c *cutter) Cut() {
	c.mu.Lock()
	c.cut = true
	conns := c.conns
	c.conns = map[net.Conn]struct{}{}
	c.mu.Unlock()
	for conn := range conns {
		reset(conn)
	}
}

// Heal lets connections through again.
func (c *cutter) Heal() {
	c.mu.Lock()
	c.cut = false
	c.mu.Unlock()
}
