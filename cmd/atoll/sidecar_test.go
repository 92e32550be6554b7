package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/sidecar"
)

// The built `atoll sidecar` as a process, its Envoy the stand-in of
// test/envoystandin (this machine has no Envoy), against a real gRPC ADS
// server that demands the pod's token and a real DNS server as the zone's.
func TestSidecarCommand(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"atoll", "."}, {"envoystandin", "../../test/envoystandin"}} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("building %s: %v\n%s", b.pkg, err, out)
		}
	}
	atoll, standin := filepath.Join(bin, "atoll"), filepath.Join(bin, "envoystandin")

	t.Run("serves", func(t *testing.T) { testSidecarServes(t, atoll, standin) })
	t.Run("envoy exits", func(t *testing.T) { testSidecarEnvoyExits(t, atoll) })
	t.Run("bad settings", func(t *testing.T) { testSidecarBadSettings(t, atoll, standin) })
}

// env is what the sidecar needs besides its Envoy: the zone's xDS and DNS
// servers, the token and resolv.conf.
type sidecarEnv struct {
	dir, token, resolv string
	xds                *adsServer
	dnsAddr            string
}

const (
	testPod, testNamespace = "kong-7d9c-x2", "kong"
	testToken              = "eyJ.pod-token.sig"
	meshVIP                = "240.0.0.7"
)

func newSidecarEnv(t *testing.T) *sidecarEnv {
	e := &sidecarEnv{dir: t.TempDir()}
	e.token = filepath.Join(e.dir, "token")
	e.resolv = filepath.Join(e.dir, "resolv.conf")
	if err := os.WriteFile(e.token, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	// Names outside the mesh are not asked in this test.
	if err := os.WriteFile(e.resolv, []byte("nameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.xds = startADS(t, sidecar.NodeID("default", testNamespace, testPod), testToken)
	e.dnsAddr = startZoneDNS(t)
	return e
}

func (e *sidecarEnv) args(standin string, extra ...string) []string {
	return append([]string{"sidecar",
		"--pod-name", testPod, "--pod-namespace", testNamespace, "--zone", "zone-1",
		"--xds-address", e.xds.addr, "--dns-address", e.dnsAddr, "--dns-port", "0",
		"--token-file", e.token, "--resolv-conf", e.resolv, "--run-dir", filepath.Join(e.dir, "run"),
		"--envoy-binary", standin, "--log-format", "json",
	}, extra...)
}

func testSidecarServes(t *testing.T, atoll, standin string) {
	e := newSidecarEnv(t)
	cmd := exec.Command(atoll, e.args(standin, "--drain-duration", "3s", "--envoy-log-level", "debug")...)
	stdout, logs := pipeLines(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The sidecar logs where its DNS proxy listens.
	start := waitLine(t, logs, func(m map[string]any) bool { return m["msg"] == "sidecar starting" })
	dnsAddrs, _ := start["dns"].([]any)
	if len(dnsAddrs) == 0 {
		t.Fatalf("the start line names no DNS address: %v", start)
	}

	// The stand-in runs with the bootstrap's node, over the relay's socket,
	// and receives the zone's clusters and listeners.
	wantNode := sidecar.NodeID("default", testNamespace, testPod)
	started := waitLine(t, stdout, func(m map[string]any) bool { return m["event"] == "started" })
	if started["node"] != wantNode || started["cluster"] != "default" || started["log_level"] != "debug" ||
		started["xds"] != "unix://"+filepath.Join(e.dir, "run", "xds.sock") {
		t.Errorf("the stand-in started as %v, want node %s over unix://<run dir>/xds.sock at log level debug", started, wantNode)
	}
	got := map[string][]any{}
	for len(got) < 2 {
		m := waitLine(t, stdout, func(m map[string]any) bool { return m["event"] == "response" || m["event"] == "stream_error" })
		if m["event"] == "stream_error" {
			t.Fatalf("the stand-in's stream failed: %v", m)
		}
		got[m["type_url"].(string)], _ = m["resources"].([]any)
	}
	if fmt.Sprint(got[resourcev3.ClusterType]) != "[backend]" || fmt.Sprint(got[resourcev3.ListenerType]) != "[outbound:240.0.0.7:80]" {
		t.Errorf("the stand-in received %v, want the server's cluster backend and listener outbound:240.0.0.7:80", got)
	}
	if nodes := e.xds.seen(); !slices.Equal(nodes, []string{wantNode}) {
		t.Errorf("the ADS server saw nodes %v, want %s", nodes, wantNode)
	}

	// A lookup of backend.mesh at the sidecar's DNS port is answered by
	// the zone's DNS.
	for _, a := range dnsAddrs {
		for _, network := range []string{"udp", "tcp"} {
			askMesh(t, a.(string), network)
		}
	}

	// SIGTERM: a drain, Envoy stopped, exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, logs, func(m map[string]any) bool { return strings.HasPrefix(fmt.Sprint(m["msg"]), "draining") })
	// During the drain the DNS proxy still answers (the application is
	// finishing its requests).
	askMesh(t, dnsAddrs[0].(string), "udp")
	waitLine(t, logs, func(m map[string]any) bool { return m["msg"] == "envoy stopped" })
	waitLine(t, logs, func(m map[string]any) bool { return m["msg"] == "sidecar stopped" })
	// Envoy's stream was never cut under it: the relay stopped after Envoy.
	for m := range stdout { // until the sidecar and the stand-in have exited
		if m["event"] == "stream_error" {
			t.Errorf("the stand-in's stream failed during the stop: %v", m)
		}
	}
	if err := waitExit(t, cmd); err != nil {
		t.Fatalf("the sidecar after SIGTERM: %v, want exit status 0", err)
	}
	// The relay's socket is gone with it.
	if _, err := os.Stat(filepath.Join(e.dir, "run", "xds.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the relay's socket outlives the sidecar: %v", err)
	}
}

// askMesh asks the DNS server at addr for backend.mesh and wants the zone
// DNS's answer.
func askMesh(t *testing.T, addr, network string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("backend.mesh.", dns.TypeA)
	r, _, err := (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("asking the sidecar's DNS at %s over %s: %v", addr, network, err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != meshVIP {
		t.Errorf("backend.mesh at %s over %s: %v, want %s from the zone's DNS", addr, network, r.Answer, meshVIP)
	}
}

// Envoy exiting by itself ends the sidecar with Envoy's status.
func testSidecarEnvoyExits(t *testing.T, atoll string) {
	e := newSidecarEnv(t)
	failing := filepath.Join(e.dir, "envoy")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho envoy says bye >&2\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, atoll, e.args(failing)...).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("the sidecar whose Envoy exits 7: %v, want exit status 7\n%s", err, out)
	}
	if !strings.Contains(string(out), "envoy says bye") || !strings.Contains(string(out), "envoy exited by itself with status 7") {
		t.Errorf("the output lacks Envoy's own message or the sidecar's:\n%s", out)
	}
}

// A bad value fails at once, naming the flag and its variable.
func testSidecarBadSettings(t *testing.T, atoll, standin string) {
	e := newSidecarEnv(t)
	for _, c := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--dns-port", "70000"}, nil, "--dns-port (ATOLL_DNS_PORT) 70000 is not a port"},
		{[]string{"--xds-address", "zone-xds"}, nil, `--xds-address (ATOLL_XDS_ADDRESS) "zone-xds" is invalid`},
		{[]string{"--xds-ca", "not a certificate"}, nil, "--xds-ca (ATOLL_XDS_CA) holds no PEM certificate"},
		{nil, []string{"ATOLL_DRAIN_DURATION=5"}, "--drain-duration (ATOLL_DRAIN_DURATION)"},
		{nil, []string{"ENVOY_LOG_LEVEL=loud"}, `--envoy-log-level (ENVOY_LOG_LEVEL) "loud" is not a level`},
		{[]string{"--token-file", filepath.Join(e.dir, "none")}, nil, "--token-file (ATOLL_TOKEN_FILE): open " + filepath.Join(e.dir, "none")},
		{[]string{"--envoy-binary", "atoll-no-such-envoy"}, nil, `--envoy-binary (ATOLL_ENVOY_BINARY): envoy binary "atoll-no-such-envoy"`},
		{[]string{"--dns-address", "zone-dns.invalid:53"}, nil, `--dns-address (ATOLL_DNS_ADDRESS) "zone-dns.invalid:53": resolving zone-dns.invalid`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, atoll, e.args(standin, c.args...)...)
		cmd.Env = append(os.Environ(), c.env...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v %v: %v, want a failure naming %q:\n%s", c.args, c.env, err, c.want, out)
		}
		if strings.Contains(string(out), `"event":"started"`) {
			t.Errorf("%v %v: Envoy was started despite the bad setting", c.args, c.env)
		}
	}
	// The flag wins over its variable.
	cmd := exec.Command(atoll, e.args(standin, "--envoy-log-level", "loud", "--print-config")...)
	cmd.Env = append(os.Environ(), "ENVOY_LOG_LEVEL=debug", "POD_NAME=from-env")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "envoyLogLevel: loud") || !strings.Contains(string(out), "podName: "+testPod) {
		t.Errorf("--print-config with flags and variables: %v\n%s", err, out)
	}
}

// adsServer is a go-control-plane ADS server that serves one node and
// refuses streams without the pod's token.
type adsServer struct {
	addr  string
	mu    sync.Mutex
	nodes []string
}

func (s *adsServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nodes)
}

func startADS(t *testing.T, nodeID, token string) *adsServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	snapshots := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]cachetypes.Resource{
		resourcev3.ClusterType:  {&clusterv3.Cluster{Name: "backend"}},
		resourcev3.ListenerType: {&listenerv3.Listener{Name: "outbound:" + meshVIP + ":80"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshots.SetSnapshot(ctx, nodeID, snap); err != nil {
		t.Fatal(err)
	}
	s := &adsServer{}
	callbacks := serverv3.CallbackFuncs{StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
		if id := r.GetNode().GetId(); id != "" {
			s.mu.Lock()
			s.nodes = append(s.nodes, id)
			s.mu.Unlock()
		}
		return nil
	}}
	srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer " + token}) {
			return status.Errorf(codes.Unauthenticated, "authorization %q, want the pod's token", got)
		}
		return handler(srv, ss)
	}))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, snapshots, callbacks))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	s.addr = lis.Addr().String()
	return s
}

// startZoneDNS serves backend.mesh over UDP and TCP on one port.
func startZoneDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "backend.mesh." && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP(meshVIP)})
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// pipeLines gives cmd's stdout and stderr as channels of JSON lines (other
// lines are skipped); each is also logged for a failing test.
func pipeLines(t *testing.T, cmd *exec.Cmd) (stdout, stderr <-chan map[string]any) {
	t.Helper()
	read := func(name string, r io.Reader) <-chan map[string]any {
		ch := make(chan map[string]any, 1000)
		go func() {
			defer close(ch)
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				t.Logf("%s: %s", name, sc.Text())
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil {
					ch <- m
				}
			}
		}()
		return ch
	}
	o, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	e, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	return read("stdout", o), read("stderr", e)
}

// waitLine returns the first line that matches, skipping the others.
func waitLine(t *testing.T, lines <-chan map[string]any, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("the output ended before the expected line")
			}
			if match(m) {
				return m
			}
		case <-timeout:
			t.Fatal("the expected line did not come within 60s")
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the sidecar did not exit within 60s")
		return nil
	}
}
