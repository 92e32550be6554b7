package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/test/corednsbin"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// Bounds on starting and stopping. CoreDNS is ready within a second or
// two once it has listed the API server; the margin is for a busy machine.
const (
	readyTimeout      = time.Minute
	readyPollInterval = 100 * time.Millisecond
	stopTimeout       = 10 * time.Second
	grantTimeout      = 30 * time.Second
	// portAttempts bounds retries when another process takes the free port
	// between choosing it and CoreDNS binding it.
	portAttempts = 3
)

// DNS is a running CoreDNS.
type DNS struct {
	// Addr is where it answers, UDP and TCP ("127.0.0.1:port").
	Addr string
	// Corefile is the path of its configuration.
	Corefile string
	// LogFile is its combined output: one line per query (the log plugin)
	// and every error.
	LogFile string
}

// Start runs CoreDNS as the cluster's DNS of cfg.Kube: it grants the
// ServiceAccount Rules, writes a kubeconfig for it and the Corefile, starts
// CoreDNS, and waits until its ready plugin reports the kubernetes plugin
// synced with the API server. CoreDNS is stopped when the test ends, and
// its log is printed when the test has failed. Any problem fails the test.
func Start(t testing.TB, cfg Config) *DNS {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	bin, err := corednsbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), grantTimeout)
	defer cancel()
	if err := grant(ctx, cfg.Kube.Clientset(t), cfg.Namespace, cfg.ServiceAccount); err != nil {
		t.Fatalf("clusterdns: granting CoreDNS's rules: %v", err)
	}
	kubeconfig := kubeenv.WriteKubeconfig(t, cfg.Kube.ServiceAccountConfig(t, cfg.Namespace, cfg.ServiceAccount))
	if strings.ContainsAny(kubeconfig, "\"\\") {
		t.Fatalf("clusterdns: the kubeconfig path %s has a quote or backslash, which a Corefile cannot hold: run the test from a plainer temporary directory (TMPDIR)", kubeconfig)
	}

	dir := t.TempDir()
	d := &DNS{Corefile: filepath.Join(dir, "Corefile"), LogFile: filepath.Join(dir, "coredns.log")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("CoreDNS log (%s):\n%s", d.LogFile, readLog(d.LogFile))
		}
	})
	for attempt := 1; ; attempt++ {
		addr, err := listenAddr(cfg.Addr)
		if err != nil {
			t.Fatalf("clusterdns: %v", err)
		}
		readyAddr, err := freeTCP()
		if err != nil {
			t.Fatalf("clusterdns: a port for the ready plugin: %v", err)
		}
		if err := os.WriteFile(d.Corefile, []byte(corefile(cfg, addr, readyAddr, kubeconfig)), 0o600); err != nil {
			t.Fatalf("clusterdns: writing the Corefile: %v", err)
		}
		p, err := kubeenv.StartProcess(bin, []string{"-conf", d.Corefile}, d.LogFile)
		if err != nil {
			t.Fatalf("clusterdns: starting %s: %v", bin, err)
		}
		err = waitReady(p, "http://"+readyAddr+"/ready", addr.String(), "kubernetes.default.svc."+zoneName(cfg.ClusterDomain)+".")
		if err == nil {
			t.Cleanup(func() {
				if err := p.Stop(stopTimeout); err != nil {
					t.Errorf("clusterdns: stopping CoreDNS: %v", err)
				}
			})
			d.Addr = addr.String()
			return d
		}
		p.Stop(stopTimeout)
		if cfg.Addr == "" && attempt < portAttempts && strings.Contains(readLog(d.LogFile), "address already in use") {
			t.Logf("clusterdns: a port was taken before CoreDNS bound it; trying others (attempt %d)", attempt)
			continue
		}
		t.Fatalf("clusterdns: CoreDNS (Corefile %s): %v", d.Corefile, err)
	}
}

// listenAddr is the configured address, or 127.0.0.1 on a port that is
// free for both UDP and TCP.
func listenAddr(configured string) (netip.AddrPort, error) {
	if configured != "" {
		return netip.MustParseAddrPort(configured), nil // validated
	}
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("a port for CoreDNS: %w", err)
		}
		addr := ln.Addr().(*net.TCPAddr).AddrPort()
		pc, err := net.ListenPacket("udp", addr.String())
		ln.Close()
		if err != nil {
			continue // the port is taken for UDP; try another
		}
		pc.Close()
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), addr.Port()), nil
	}
	return netip.AddrPort{}, errors.New("no loopback port free for both UDP and TCP in 20 tries")
}

// freeTCP is a free loopback TCP address.
func freeTCP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// up. It gives up when the process exits or readyTimeout passes.
func waitReady(p *kubeenv.Process, url, addr, name string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	last := "no answer yet"
	ready := false
	for {
		if !ready {
			ready, last = askReady(client, url)
		}
		if ready {
			var serving bool
			if serving, last = answers(addr, name); serving {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-p.Exited():
			return fmt.Errorf("exited before it was ready: %v", p.Err())
		case <-deadline.C:
			return fmt.Errorf("not ready after %s (a ServiceAccount lacking a permission keeps the kubernetes plugin from syncing); last: %s", readyTimeout, last)
		}
	}
}

// askReady asks the ready plugin once; when not ready, it says why.
func askReady(client *http.Client, url string) (bool, string) {
	resp, err := client.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("%s answered %s, not ready: %s", url, resp.Status, strings.TrimSpace(string(body)))
}

// answers asks addr for name's A record over UDP and TCP once; when either
// does not answer NOERROR, it says how.
func answers(addr, name string) (bool, string) {
	for _, network := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: network, Timeout: time.Second}
		r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(name, mdns.TypeA), addr)
		if err != nil {
			return false, fmt.Sprintf("%s question for %s to %s: %v", network, name, addr, err)
		}
		if r.Rcode != mdns.RcodeSuccess {
			return false, fmt.Sprintf("%s question for %s to %s: %s", network, name, addr, mdns.RcodeToString[r.Rcode])
		}
	}
	return true, ""
}

// readLog returns CoreDNS's log, its last 200 lines at most, without the
// line the ready plugin writes at every poll while not ready (counted
// instead), which would push out the lines that say why.
func readLog(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	var lines []string
	notReady := 0
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if strings.Contains(line, "plugin/ready: Plugins not ready") {
			notReady++
			continue
		}
		lines = append(lines, line)
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	if notReady > 0 {
		lines = append(lines, fmt.Sprintf("(and %d lines of the ready plugin saying a plugin was not ready)", notReady))
	}
	return strings.Join(lines, "\n")
}
