// Command dnsbench measures atoll's DNS server side by side with CoreDNS:
// both serve the same names under "mesh.", both are loaded by dnsperf with
// the same query file, each server pinned to one core and dnsperf to
// another, so "per core" means what it says.
//
// For each server it reports, from a saturating run, queries/s and queries
// per server CPU-second (the server process's user+system time from
// /proc), and, from a run at a fixed rate both sustain, p50 and p99
// latency of every query (dnsperf -v). It fails when a server answers
// anything but NOERROR, so a misconfigured server cannot look fast.
//
// Run it with `make bench-dns`, which builds CoreDNS at its pinned version
// (`make coredns`, test/coredns) and installs dnsperf from Debian.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/test/corednsbin"
)

var (
	coredns  = flag.String("coredns", "", "CoreDNS binary (default: the one make coredns builds, or $"+corednsbin.BinaryEnv+")")
	count    = flag.Int("names", 10000, "number of service names both servers hold")
	duration = flag.Duration("duration", 10*time.Second, "length of each saturating run")
	rate     = flag.Int("latency-qps", 10000, "query rate of the latency runs")
	latLen   = flag.Duration("latency-duration", 5*time.Second, "length of each latency run")
	rounds   = flag.Int("rounds", 2, "runs per server, alternating; the best throughput and the median latencies are kept")
	serve    = flag.String("serve-atoll", "", "internal: serve atoll's DNS on this address")
)

const ttl = 5 * time.Second

func main() {
	flag.Parse()
	var err error
	if *serve != "" {
		err = serveAtoll(*serve, *count)
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func name(i int) string { return fmt.Sprintf("svc-%05d", i) }

func vip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{240, 0, byte(i >> 8), byte(i)})
}

// serveAtoll runs atoll's DNS server as a zone does (package dns, the
// zone's defaults), with count names, until killed.
func serveAtoll(addr string, count int) error {
	names := make(map[string][]netip.Addr, count)
	for i := range count {
		names[name(i)] = []netip.Addr{vip(i)}
	}
	srv := dns.NewServer(dns.Config{Addr: addr, Domain: "mesh", TTL: ttl},
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	srv.SetTable(dns.NewTable("mesh", names))
	return srv.Run(context.Background())
}

type server struct {
	name string
	cmd  *exec.Cmd
	port int
}

type result struct {
	qps, perCPU float64
	p50, p99    time.Duration
	cpu         time.Duration
}

func run() error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return errors.New("dnsperf is not installed (make bench-dns installs it from Debian)")
	}
	if *coredns == "" {
		bin, err := corednsbin.Path()
		if err != nil {
			return err
		}
		*coredns = bin
	} else if _, err := os.Stat(*coredns); err != nil {
		return fmt.Errorf("CoreDNS binary %s: %w (make coredns builds it)", *coredns, err)
	}
	dir, err := os.MkdirTemp("", "dnsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	queries := filepath.Join(dir, "queries")
	if err := writeFiles(dir, *count); err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	atollPort, corePort := freePort(), freePort()
	servers := []*server{
		{name: "atoll", port: atollPort, cmd: exec.Command("taskset", "-c", "0", self,
			"-serve-atoll", fmt.Sprintf("127.0.0.1:%d", atollPort), "-names", strconv.Itoa(*count))},
		{name: "CoreDNS", port: corePort, cmd: exec.Command("taskset", "-c", "0", *coredns,
			"-conf", corefile(dir, corePort), "-quiet")},
	}
	for _, s := range servers {
		s.cmd.Stderr = os.Stderr
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", s.name, err)
		}
		defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
		if err := waitAnswer(s.port); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	version, _ := exec.Command(*coredns, "-version").Output()
	fmt.Printf("%d names; each server pinned to CPU 0, dnsperf to CPU 1; %s saturating runs, latency at %d queries/s for %s; %d rounds\n",
		*count, *duration, *rate, *latLen, *rounds)
	fmt.Printf("CoreDNS: %s", firstLine(version))

	results := map[string][]result{}
	for round := range *rounds {
		for _, s := range servers {
			r, err := measure(s, queries)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			fmt.Printf("  round %d %-8s %8.0f queries/s %8.0f queries/CPU-s  p50 %s  p99 %s\n", round+1, s.name, r.qps, r.perCPU, ms(r.p50), ms(r.p99))
			results[s.name] = append(results[s.name], r)
		}
	}

	fmt.Printf("\n%-8s %12s %10s %18s %9s %9s\n", "server", "queries/s", "CPU-s", "queries/CPU-s", "p50", "p99")
	best := map[string]result{}
	for _, s := range servers {
		rs := results[s.name]
		b := slices.MaxFunc(rs, func(a, c result) int { return int(a.perCPU - c.perCPU) })
		p50s, p99s := []time.Duration{}, []time.Duration{}
		for _, r := range rs {
			p50s, p99s = append(p50s, r.p50), append(p99s, r.p99)
		}
		b.p50, b.p99 = median(p50s), median(p99s)
		best[s.name] = b
		fmt.Printf("%-8s %12.0f %10.2f %18.0f %9s %9s\n", s.name, b.qps, b.cpu.Seconds(), b.perCPU, ms(b.p50), ms(b.p99))
	}
	a, c := best["atoll"], best["CoreDNS"]
	fmt.Printf("\natoll / CoreDNS: %.2f× queries per CPU-second (target ≥ 1.5×), %.2f× queries/s; p99 %s vs %s (target: no worse)\n",
		a.perCPU/c.perCPU, a.qps/c.qps, ms(a.p99), ms(c.p99))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return line + "\n"
}

// writeFiles writes the dnsperf query file and CoreDNS's zone file.
func writeFiles(dir string, count int) error {
	var q, z bytes.Buffer
	fmt.Fprintf(&z, "$ORIGIN mesh.\n$TTL %d\n@ IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 %d\n@ IN NS ns.mesh.\nns IN A 127.0.0.1\n",
		int(ttl.Seconds()), int(ttl.Seconds()))
	for i := range count {
		fmt.Fprintf(&q, "%s.mesh A\n", name(i))
		fmt.Fprintf(&z, "%s IN A %s\n", name(i), vip(i))
	}
	if err := os.WriteFile(filepath.Join(dir, "queries"), q.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "db.mesh"), z.Bytes(), 0o644)
}

// corefile configures CoreDNS as the authority for mesh. with the file
// plugin, like atoll's server, and returns its path.
func corefile(dir string, port int) string {
	path := filepath.Join(dir, "Corefile")
	conf := fmt.Sprintf("mesh.:%d {\n    bind 127.0.0.1\n    file %s\n    errors\n}\n", port, filepath.Join(dir, "db.mesh"))
	os.WriteFile(path, []byte(conf), 0o644)
	return path
}

func freePort() int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// waitAnswer waits until the server on port answers a known name.
func waitAnswer(port int) error {
	c := &mdns.Client{Timeout: 200 * time.Millisecond}
	m := new(mdns.Msg).SetQuestion(name(1)+".mesh.", mdns.TypeA)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, _, err := c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", port)); err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer for %s.mesh on port %d within 30s", name(1), port)
}

// cpuTime is the user+system time of process pid and its threads.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

var (
	completedRE = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	qpsRE       = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	rcodesRE    = regexp.MustCompile(`Response codes:\s+(.*)`)
	lostRE      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
)

// measure runs a saturating dnsperf and a fixed-rate one against s. The
// server's process is taskset's child after exec: the same pid.
func measure(s *server, queries string) (result, error) {
	var r result
	pid := s.cmd.Process.Pid
	before, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	out, err := dnsperf(s.port, queries, "-l", seconds(*duration), "-c", "16", "-q", "256")
	if err != nil {
		return r, err
	}
	after, err := cpuTime(pid)
	if err != nil {
		return r, err
	}
	completed, err := field(completedRE, out)
	if err != nil {
		return r, err
	}
	qps, err := field(qpsRE, out)
	if err != nil {
		return r, err
	}
	r.cpu, r.qps = after-before, qps
	r.perCPU = completed / r.cpu.Seconds()

	out, err = dnsperf(s.port, queries, "-l", seconds(*latLen), "-c", "4", "-Q", strconv.Itoa(*rate), "-v")
	if err != nil {
		return r, err
	}
	if lost, _ := field(lostRE, out); lost > 0 {
		return r, fmt.Errorf("%v queries lost at %d queries/s: lower -latency-qps", lost, *rate)
	}
	var lat []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "> NOERROR svc-00001.mesh A 0.000089"
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[0] == ">" {
			if f[1] != "NOERROR" {
				return r, fmt.Errorf("answered %s for %s", f[1], f[2])
			}
			sec, err := strconv.ParseFloat(f[4], 64)
			if err == nil {
				lat = append(lat, time.Duration(sec*float64(time.Second)))
			}
		}
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("dnsperf -v printed no latencies:\n%s", tail(out))
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r, nil
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) }

func dnsperf(port int, queries string, args ...string) ([]byte, error) {
	cmd := exec.Command("taskset", append([]string{"-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", queries}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dnsperf: %w\n%s", err, tail(out))
	}
	if m := rcodesRE.FindSubmatch(out); m == nil || !strings.HasPrefix(string(m[1]), "NOERROR") || strings.Contains(string(m[1]), ",") {
		return nil, fmt.Errorf("answers were not all NOERROR:\n%s", tail(out))
	}
	return out, nil
}

func field(re *regexp.Regexp, out []byte) (float64, error) {
	m := re.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("dnsperf output lacks %q:\n%s", re, tail(out))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
