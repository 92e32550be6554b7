// Command dnsbench measures a running atoll zone's DNS server side by side
// with CoreDNS, under a realistic query mix.
//
// atoll: `atoll zone` in universal mode with no global, given one
// Dataplane per service through its API; its DNS answers `.mesh` names
// from its own VIP table (the zone's proposed VIPs). CoreDNS: the `file`
// plugin with a zone file written from the zone's GET
// /meshes/default/vips, so both hold the same records. Before measuring,
// a handful of queries of every shape go to both and their answers must
// agree.
//
// The mix: every lookup asks A and then AAAA for its name, as dual-stack
// resolvers do (the VIPs are IPv4 only, so AAAA is NODATA); -nx-percent of
// the lookups are for names that do not exist (NXDOMAIN); every query
// carries EDNS0; -tcp-percent of the queries go over TCP. dnsperf sends one
// transport per run, so throughput comes from a saturating UDP run and a
// saturating TCP run, each giving the server's queries per CPU-second (its
// process's user+system time from /proc), combined by the shares: the CPU
// cost of a mixed query is the weighted mean of the two costs. Latency
// comes from UDP and TCP dnsperf runs at the same time at fixed rates that
// make up the mix (p50 and p99 of every query, dnsperf -v).
//
// Each server is pinned to CPU 0 and dnsperf to CPU 1; -rounds rounds
// alternate between the servers; the best of the rounds is kept and the
// spread printed. The last line is for the summary of `make bench`:
//
//	dnsbench: qps-per-cpu-ratio=<atoll/CoreDNS> p99-atoll-ms=<best> p99-coredns-ms=<best>
//
// Run it with `make bench-dns`, which builds atoll and CoreDNS at its
// pinned version (`make coredns`, test/coredns) and installs dnsperf.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/test/corednsbin"
)

var (
	atollBin   = flag.String("atoll", "", "atoll binary (default: build ./cmd/atoll)")
	coredns    = flag.String("coredns", "", "CoreDNS binary (default: the one make coredns builds, or $"+corednsbin.BinaryEnv+")")
	count      = flag.Int("names", 10000, "number of services (DNS names) the zone holds")
	nxPercent  = flag.Int("nx-percent", 10, "percent of lookups for names that do not exist")
	tcpPercent = flag.Int("tcp-percent", 10, "percent of queries over TCP")
	duration   = flag.Duration("duration", 10*time.Second, "length of each saturating UDP run")
	tcpLen     = flag.Duration("tcp-duration", 5*time.Second, "length of each saturating TCP run")
	rate       = flag.Int("latency-qps", 10000, "query rate of the latency runs, UDP and TCP together")
	latLen     = flag.Duration("latency-duration", 5*time.Second, "length of each latency run")
	rounds     = flag.Int("rounds", 5, "rounds per server, alternating; the best of them is kept")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dnsbench:", err)
		os.Exit(1)
	}
}

func run() error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return errors.New("dnsperf is not installed (make bench-dns installs it)")
	}
	if *tcpPercent < 0 || *tcpPercent > 100 || *rounds < 1 || *count < 2 {
		return errors.New("-tcp-percent must be in [0, 100], -rounds at least 1, -names at least 2")
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
	if *atollBin == "" {
		if *atollBin, err = buildAtoll(dir); err != nil {
			return err
		}
	}

	// The zone, with its services registered and their VIPs listed.
	apiPort, atollPort, corePort := freePort(), freePort(), freePort()
	zone := &server{name: "atoll", port: atollPort, cmd: startZone(*atollBin, dir, apiPort, atollPort)}
	if err := zone.cmd.Start(); err != nil {
		return fmt.Errorf("starting atoll zone: %w", err)
	}
	defer stop(zone)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	start := time.Now()
	if err := register(apiURL, *count); err != nil {
		return err
	}
	views, err := zoneVIPs(apiURL, *count)
	if err != nil {
		return err
	}
	fmt.Printf("atoll zone (universal, no global): %d Dataplanes registered through its API and their VIPs listed in %s\n",
		*count, time.Since(start).Round(100*time.Millisecond))

	// CoreDNS with the same records.
	zoneFile := filepath.Join(dir, "db.mesh")
	if err := writeZoneFile(zoneFile, views); err != nil {
		return err
	}
	corefile, err := writeCorefile(dir, zoneFile, corePort)
	if err != nil {
		return err
	}
	core := &server{name: "CoreDNS", port: corePort, cmd: exec.Command("taskset", "-c", "0", *coredns, "-conf", corefile, "-quiet")}
	core.cmd.Stderr = os.Stderr
	if err := core.cmd.Start(); err != nil {
		return fmt.Errorf("starting CoreDNS: %w", err)
	}
	defer stop(core)
	servers := []*server{zone, core}
	for _, s := range servers {
		if err := waitAnswer(s.port); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	checked, err := checkAnswers(addr(atollPort), addr(corePort), views)
	if err != nil {
		return fmt.Errorf("the servers' answers differ, nothing measured: %w", err)
	}
	fmt.Println(checked)

	queries := filepath.Join(dir, "queries")
	n, err := writeQueries(queries, *count, *nxPercent)
	if err != nil {
		return err
	}
	l := load{
		queries: queries, tcpShare: float64(*tcpPercent) / 100, nxShare: float64(*nxPercent) / 100,
		duration: *duration, tcpLen: *tcpLen, rate: *rate, latLen: *latLen,
		udpParams: []string{"-c", "16", "-q", "256"},
		tcpParams: []string{"-c", "16", "-q", "256"},
	}
	version, _ := exec.Command(*coredns, "-version").Output()
	fmt.Printf("CoreDNS: %s", firstLine(version))
	fmt.Printf("query file: %d queries, A then AAAA per name (AAAA: NODATA), %d%% of names nonexistent (NXDOMAIN), EDNS0 on every query\n", n, *nxPercent)
	fmt.Printf("each server pinned to CPU 0, dnsperf to CPU 1; per round and server: UDP saturating %s (dnsperf %s), TCP saturating %s (dnsperf -m tcp %s), mix = %d%% UDP + %d%% TCP by CPU cost; latency: UDP and TCP together at %d queries/s in those shares for %s; %d rounds\n\n",
		*duration, strings.Join(l.udpParams, " "), *tcpLen, strings.Join(l.tcpParams, " "), 100-*tcpPercent, *tcpPercent, *rate, *latLen, *rounds)

	results := map[string][]result{}
	for round := range *rounds {
		for _, s := range servers {
			r, err := measure(s, l)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			fmt.Printf("  round %d %-8s mix %7.0f queries/CPU-s %7.0f queries/s (UDP %7.0f, TCP %7.0f queries/CPU-s)  p50 %s  p99 %s (UDP %s, TCP %s)  TCP lost %.0f of %.0f\n",
				round+1, s.name, r.perCPU, r.qps, r.udpPerCPU, r.tcpPerCPU, ms(r.p50), ms(r.p99), ms(r.p99UDP), ms(r.p99TCP), r.tcpLost, r.tcpSent)
			results[s.name] = append(results[s.name], r)
		}
	}
	return report(servers, results)
}

// report prints, per server, the best of the rounds and the spread of each
// figure, then the ratio and the machine-readable line.
func report(servers []*server, results map[string][]result) error {
	fmt.Printf("\nbest of %d rounds (spread over the rounds in brackets)\n", len(results["atoll"]))
	fmt.Printf("%-8s %30s %30s %30s %26s %26s\n", "server", "mix queries/CPU-s", "UDP queries/CPU-s", "TCP queries/CPU-s", "p50 ms", "p99 ms")
	type best struct {
		perCPU float64
		p99    time.Duration
	}
	bests := map[string]best{}
	for _, s := range servers {
		rs := results[s.name]
		col := func(f func(result) float64, hi bool) string {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			b := slices.Min(v)
			if hi {
				b = slices.Max(v)
			}
			return fmt.Sprintf("%.0f [%.0f–%.0f]", b, slices.Min(v), slices.Max(v))
		}
		lat := func(f func(result) time.Duration) (time.Duration, string) {
			v := make([]time.Duration, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			b := slices.Min(v)
			return b, fmt.Sprintf("%s [%s–%s]", msf(b), msf(b), msf(slices.Max(v)))
		}
		_, p50 := lat(func(r result) time.Duration { return r.p50 })
		p99, p99s := lat(func(r result) time.Duration { return r.p99 })
		fmt.Printf("%-8s %30s %30s %30s %26s %26s\n", s.name,
			col(func(r result) float64 { return r.perCPU }, true),
			col(func(r result) float64 { return r.udpPerCPU }, true),
			col(func(r result) float64 { return r.tcpPerCPU }, true), p50, p99s)
		perCPU := slices.MaxFunc(rs, func(a, b result) int { return cmpFloat(a.perCPU, b.perCPU) }).perCPU
		bests[s.name] = best{perCPU, p99}
	}
	a, c := bests["atoll"], bests["CoreDNS"]
	ratio := a.perCPU / c.perCPU
	fmt.Printf("\natoll / CoreDNS: %.2f× queries per CPU-second on the mix (target ≥ 1.5×: %s); p99 %sms vs %sms (target: no worse: %s)\n",
		ratio, verdict(ratio >= 1.5), msf(a.p99), msf(c.p99), verdict(a.p99 <= c.p99))
	fmt.Printf("dnsbench: qps-per-cpu-ratio=%.2f p99-atoll-ms=%s p99-coredns-ms=%s\n", ratio, msf(a.p99), msf(c.p99))
	return nil
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func ms(d time.Duration) string { return msf(d) + "ms" }

func msf(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d.Microseconds())/1000) }

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return line + "\n"
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// stop kills a server and waits for it.
func stop(s *server) {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// handedOut holds the ports freePort gave, so no two are the same.
var handedOut = map[int]bool{}

// freePort returns a port free for both UDP and TCP on loopback a moment
// ago.
func freePort() int {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", addr(port))
		ln.Close()
		if err == nil {
			pc.Close()
			if handedOut[port] {
				continue
			}
			handedOut[port] = true
			return port
		}
	}
}

// waitAnswer waits until the server on port answers a known name.
func waitAnswer(port int) error {
	c := &mdns.Client{Timeout: 200 * time.Millisecond}
	m := new(mdns.Msg).SetQuestion(name(1)+".mesh.", mdns.TypeA)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, _, err := c.Exchange(m, addr(port)); err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer for %s.mesh on port %d within 30s", name(1), port)
}
