package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Network faults between a zone and the global: zone-2 runs in a network
// namespace the test creates, joined to the host by a veth pair, and
// reaches the global through a relay on the host that delays every byte
// 50 ms each way (100 ms round trips); iptables rules in the namespace
// drop 10% of the packets each way, then all of them (a silent partition:
// no RST, no FIN, only keepalives can tell), then none. The global and
// zone-1 run on the host. (tc netem would shape the veth itself, but this
// machine's kernel has no netem qdisc; iptables' statistic match and a
// userspace delay give the same faults at the packet and stream level.) Nothing is lost or resurrected:
// after the heal the global holds exactly zone-2's Dataplanes (one deleted
// during the partition stays deleted, one added arrives), and each zone
// counts exactly the other's instances.
func TestNetworkFaultsBetweenZoneAndGlobal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the network fault test creates a network namespace and needs root")
	}
	n := os.Getpid()%250 + 1
	hostIP, nsIP := fmt.Sprintf("10.252.%d.1", n), fmt.Sprintf("10.252.%d.2", n)
	ns, veth := fmt.Sprintf("atoll-nf-%d", os.Getpid()), fmt.Sprintf("anf%d", os.Getpid()%100000)
	if out, _ := exec.Command("ip", "-4", "addr", "show").CombinedOutput(); strings.Contains(string(out), hostIP+"/") {
		t.Fatalf("%s is already on this host (a namespace left by an earlier run? ip netns list):\n%s", hostIP, out)
	}
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { sh(t, "ip", "netns", "del", ns) })
	sh(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	sh(t, "ip", "addr", "add", hostIP+"/24", "dev", veth)
	sh(t, "ip", "link", "set", veth, "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/24", "dev", "eth0")
	sh(t, "ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
	// drop replaces the namespace's rules on eth0, both ways, with a
	// DROP of every packet ("all"), of a random share ("10%"), or none ("").
	drop := func(what string) {
		t.Helper()
		sh(t, "ip", "netns", "exec", ns, "iptables", "-F", "INPUT")
		sh(t, "ip", "netns", "exec", ns, "iptables", "-F", "OUTPUT")
		var match []string
		switch what {
		case "":
			return
		case "all":
		default:
			p, err := strconv.ParseFloat(strings.TrimSuffix(what, "%"), 64)
			if err != nil {
				t.Fatal(err)
			}
			match = []string{"-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(p / 100)}
		}
		// A rule with no target first: it counts every packet.
		sh(t, "ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "eth0")
		sh(t, "ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", "eth0")
		sh(t, append(append([]string{"ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "eth0"}, match...), "-j", "DROP")...)
		sh(t, append(append([]string{"ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-o", "eth0"}, match...), "-j", "DROP")...)
	}

	kdsPort := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	g := startGlobal(t, t.TempDir(), "--kds-addr", hostIP+":"+kdsPort, "--kds-tls-san", hostIP, "--zone-offline-after", "5s")
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	// 100 ms round trips and 10% loss each way from the start: the TLS
	// handshake and the first sync cross them too.
	drop("10%")
	relay := startDelayRelay(t, hostIP+":"+strings.TrimPrefix(freePort(t), "127.0.0.1:"), g.kdsAddr, 50*time.Millisecond)
	z2 := startZoneInNetns(t, ns, "zone-2", append([]string{"--global-address", "grpcs://" + relay, "--global-ca-file", g.caFile()},
		syncedTokenFlags(t, g, "zone-2")...))

	register := func(z *nsZone, name, service string) {
		t.Helper()
		body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":%q,"networking":{"address":"10.9.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":%q}}]}}`, name, service)
		if status, out := z.call(t, "PUT", "/meshes/default/dataplanes/"+name, body); status/100 != 2 {
			t.Fatalf("registering %s: %d %s", name, status, out)
		}
	}
	remove := func(z *nsZone, name string) {
		t.Helper()
		if status, out := z.call(t, "DELETE", "/meshes/default/dataplanes/"+name, ""); status != http.StatusOK {
			t.Fatalf("removing %s: %d %s", name, status, out)
		}
	}
	host := &nsZone{apiURL: z1.apiURL, client: http.DefaultClient}
	// converged waits until the global holds exactly zone-2's Dataplanes
	// want, zone-1 counts len(want) instances of service a in zone-2, and
	// zone-2 counts one instance of zone-1's service z1.
	converged := func(what, z1Service string, want ...string) {
		t.Helper()
		waitFor(t, 90*time.Second, what, func() error {
			var got []string
			for _, name := range names(t, g.apiURL+"/meshes/default/dataplanes") {
				if strings.HasSuffix(name, ".zone-2") {
					got = append(got, strings.TrimSuffix(name, ".zone-2"))
				}
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("the global has zone-2's %v, want %v", got, want)
			}
			if n := instancesIn(t, z1.apiURL, "a", "zone-2"); int(n) != len(want) {
				return fmt.Errorf("zone-1 counts %d instances of a in zone-2, want %d", n, len(want))
			}
			if n := z2.instances(t, z1Service, "zone-1"); n != 1 {
				return fmt.Errorf("zone-2 counts %d instances of %s in zone-1, want 1", n, z1Service)
			}
			return nil
		})
	}

	var want []string
	for i := 1; i <= 100; i++ {
		name := fmt.Sprintf("a%03d", i)
		register(z2, name, "a")
		want = append(want, name)
	}
	register(host, "z1-x", "z1-x")
	converged("sync across 100 ms round trips and 10% loss", "z1-x", want...)
	total, lost := packets(t, ns)
	t.Logf("10%% loss: %d of %d packets through the namespace's eth0 dropped", lost, total)
	if total >= 200 && lost == 0 {
		t.Errorf("no packet of %d was dropped: the loss rules do not work", total)
	}

	// A silent partition: every packet dropped, nothing reset.
	drop("all")
	cut := time.Now()
	waitFor(t, 60*time.Second, "the global seeing zone-2 offline", func() error {
		if online, err := zoneIsOnline(g.apiURL, "zone-2"); err != nil || online {
			return fmt.Errorf("online %v (%v)", online, err)
		}
		return nil
	})
	t.Logf("silent partition: the global had zone-2 offline after %s (--zone-offline-after 5s)", time.Since(cut).Round(100*time.Millisecond))
	waitFor(t, 90*time.Second, "zone-2 seeing the global gone (KDS keepalive: 20 s + 10 s)", func() error {
		status, body := z2.call(t, "GET", "/zone", "")
		var st struct {
			Connected bool `json:"connected"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Connected {
			return fmt.Errorf("GET /zone: %d %s", status, body)
		}
		return nil
	})
	t.Logf("silent partition: zone-2 reported itself disconnected after %s", time.Since(cut).Round(100*time.Millisecond))
	// Both sides change while cut off.
	remove(z2, "a001")
	register(z2, "a101", "a")
	want = append(want[1:], "a101")
	remove(host, "z1-x")
	register(host, "z1-y", "z1-y")
	if status, body := z2.call(t, "GET", "/readyz", ""); status != http.StatusOK {
		t.Errorf("zone-2 unready while cut off from the global: %d %s", status, body)
	}

	// Healed: reconciled both ways, nothing lost or resurrected.
	drop("")
	healed := time.Now()
	converged("reconciled after the partition healed", "z1-y", want...)
	t.Logf("healed: reconciled after %s", time.Since(healed).Round(100*time.Millisecond))
	if n := z2.instances(t, "z1-x", "zone-1"); n != 0 {
		t.Errorf("zone-2 still counts %d instances of z1-x, deleted in zone-1 during the partition", n)
	}
}

// nsZone is a zone whose API the test reaches with client.
type nsZone struct {
	apiURL string
	client *http.Client
}

func (z *nsZone) call(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, z.apiURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := z.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// instances is how many instances of service in zone this zone counts.
func (z *nsZone) instances(t *testing.T, service, zone string) uint32 {
	t.Helper()
	status, body := z.call(t, "GET", "/meshes/default/services", "")
	return instancesOf(t, status, body, service, zone)
}

// zoneIsOnline is whether the global at apiURL has zone online.
func zoneIsOnline(apiURL, zone string) (bool, error) {
	resp, err := http.Get(apiURL + "/zones/" + zone)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var z struct {
		Online bool `json:"online"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&z); err != nil {
		return false, err
	}
	return z.Online, nil
}

// startZoneInNetns runs a universal zone inside network namespace ns, its
// API on the namespace's loopback, and waits until it is ready. The test
// reaches the API with a client whose connections are made in ns.
func startZoneInNetns(t *testing.T, ns, zone string, args []string) *nsZone {
	t.Helper()
	z := &nsZone{apiURL: "http://127.0.0.1:5691", client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNetns(ctx, ns, network, addr)
		}}}}
	logs := &syncBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(binDir, "atoll"), "zone", "--zone", zone,
		"--mode", "universal", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:5691",
		"--dns-addr", "127.0.0.1:5653", "--xds-addr", "127.0.0.1:5678", "--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("zone %s in %s:\n%s", zone, ns, logs)
		}
	})
	waitFor(t, 30*time.Second, zone+" ready in "+ns, func() error {
		select {
		case <-done:
			t.Fatalf("zone %s exited:\n%s", zone, logs)
		default:
		}
		resp, err := z.client.Get(z.apiURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %s", resp.Status)
		}
		return nil
	})
	return z
}

// dialInNetns opens a connection from inside network namespace ns: the
// socket is made on a thread moved there, and stays in ns for its life.
func dialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			out <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			out <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			out <- result{nil, fmt.Errorf("entering %s: %w", ns, err)}
			return
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		out <- result{c, err}
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			return // the thread stays locked and dies with this goroutine, never reused in ns
		}
		runtime.UnlockOSThread()
	}()
	r := <-out
	return r.c, r.err
}

// startDelayRelay relays TCP connections from listen to target, holding
// every chunk read in either direction for delay before writing it on,
// until the test ends. It returns the address it listens on.
func startDelayRelay(t *testing.T, listen, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn) {
		mu.Lock()
		conns[c] = true
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in)
			track(out)
			go delayCopy(out, in, delay)
			go delayCopy(in, out, delay)
		}
	}()
	return ln.Addr().String()
}

// delayCopy copies src to dst, each chunk delay after it was read; when
// either side ends, both are closed.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		data []byte
		due  time.Time
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
}

// packets says how many packets crossed the namespace's eth0 either way
// (the counting rules), and how many its DROP rules dropped.
func packets(t *testing.T, ns string) (total, lost int) {
	t.Helper()
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		for _, l := range strings.Split(sh(t, "ip", "netns", "exec", ns, "iptables", "-L", chain, "-v", "-n", "-x"), "\n") {
			f := strings.Fields(l)
			if len(f) < 3 {
				continue
			}
			n, err := strconv.Atoi(f[0])
			if err != nil {
				continue // a header
			}
			if f[2] == "DROP" {
				lost += n
			} else { // the counting rule (no target), the chain's only other rule
				total += n
			}
		}
	}
	return total, lost
}
