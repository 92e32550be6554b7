package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/atoll-mesh/atoll/internal/sidecar/dnsproxy"
)

// inNetns runs fn on a thread moved into the network namespace ns: sockets
// fn creates belong to ns for the rest of their lives, whichever thread
// uses them afterwards.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("entering namespace %s: %v", ns, err)
	}
	defer func() {
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread must not go back to the pool in ns.
			panic(fmt.Sprintf("leaving namespace %s: %v", ns, err))
		}
	}()
	fn()
}

// TestTransparentProxyDNSReachesTheZone: a gateway pod's lookup of
// backend.mesh, sent to the cluster's DNS Service IP as the gateway would,
// is redirected by the rules atoll transparent-proxy installs to the
// sidecar's DNS port, and answered — through the sidecar, which forwards
// the mesh domain to the zone — by a real zone's DNS server with the VIP
// the global assigned. The sidecar's DNS proxy (internal/sidecar/dnsproxy)
// listens on port 15053 inside the pod's network namespace.
func TestTransparentProxyDNSReachesTheZone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the transparent-proxy test creates a network namespace and needs root")
	}
	g := startGlobal(t, t.TempDir())
	zoneDNS := freePort(t)
	startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--dns-addr", zoneDNS)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	if status, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	var vip string
	waitFor(t, syncWait, "backend's VIP at the global", func() error {
		if vip, _ = vipOf(t, g.apiURL, "backend"); vip == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	waitResolve(t, zoneDNS, "backend.mesh", vip)

	// The pod's network namespace: a route for the cluster's Service
	// range (so the lookup leaves through the rules), and the gateway's
	// rules installed by the command the init container runs.
	ns := fmt.Sprintf("atoll-e2e-dns-%d", os.Getpid())
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { sh(t, "ip", "netns", "del", ns) })
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	// A veth pair (no dummy interfaces on every kernel); its outer end
	// goes with the namespace.
	sh(t, "ip", "link", "add", fmt.Sprintf("atd%d", os.Getpid()%100000), "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", "10.244.1.7/24", "dev", "eth0")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "route", "add", "default", "dev", "eth0")
	sh(t, "ip", "netns", "exec", ns, filepath.Join(binDir, "atoll"), "transparent-proxy", "install",
		"--proxy-uid", "5678", "--outbound-port", "15001", "--inbound-port", "15006", "--dns-port", "15053",
		"--redirect-inbound=false")

	// The sidecar's DNS proxy, as atoll sidecar runs it: bound inside the
	// namespace on the port the rules redirect to; its own queries to the
	// zone leave from outside (in the pod, its UID keeps them from being
	// redirected).
	cfg := dnsproxy.Default()
	cfg.Mesh, cfg.Upstream = zoneDNS, "127.0.0.1:1" // nothing outside the mesh domain is asked
	var proxy *dnsproxy.Proxy
	inNetns(t, ns, func() {
		var err error
		if proxy, err = dnsproxy.New(cfg, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proxy.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the DNS proxy: %v", err)
		}
	})

	// The gateway's lookups, to the cluster DNS Service IP, from inside.
	for _, network := range []string{"udp", "tcp"} {
		var conn net.Conn
		inNetns(t, ns, func() {
			var err error
			if conn, err = net.DialTimeout(network, "10.96.0.10:53", 2*time.Second); err != nil {
				t.Fatalf("%s to 10.96.0.10:53 from the pod's namespace: %v", network, err)
			}
		})
		q := new(mdns.Msg)
		q.SetQuestion("backend.mesh.", mdns.TypeA)
		c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
		r, _, err := c.ExchangeWithConn(q, &mdns.Conn{Conn: conn})
		conn.Close()
		if err != nil {
			t.Fatalf("%s lookup of backend.mesh from the pod's namespace: %v", network, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != vip {
			t.Errorf("%s lookup of backend.mesh from the pod's namespace answered %v, want the global's VIP %s", network, r.Answer, vip)
		}
	}
}
