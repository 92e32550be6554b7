package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// server is one DNS server under test: its process (taskset's child after
// exec, so the same pid) and its port, UDP and TCP.
type server struct {
	name string
	cmd  *exec.Cmd
	port int
}

// load is what every round sends: the query file and how it mixes.
type load struct {
	queries   string
	tcpShare  float64 // share of queries sent over TCP
	nxShare   float64 // share of queries answered NXDOMAIN
	duration  time.Duration
	tcpLen    time.Duration
	rate      int
	latLen    time.Duration
	udpParams []string
	tcpParams []string
}

// result is one round against one server.
type result struct {
	udpPerCPU, tcpPerCPU float64 // queries per server CPU-second, each transport saturating alone
	perCPU, qps          float64 // the mix: (1-tcpShare) UDP, tcpShare TCP
	p50, p99             time.Duration
	p99UDP, p99TCP       time.Duration // p99 of each transport's queries alone
	// tcpLost counts queries sent over TCP and never answered, in the
	// saturating TCP run and the latency run: a server that closes a
	// connection with queries in flight loses them.
	tcpLost, tcpSent float64
}

// measure runs one round against s: a saturating UDP run and a saturating
// TCP run, each giving queries per CPU-second of the server, combined into
// the mix's by its shares (the CPU cost of a mixed query is the weighted
// mean of the two costs); then UDP and TCP together at fixed rates making
// up the mix, giving the latency of every query.
func measure(s *server, l load) (result, error) {
	var r result
	udpCPU, udp, err := saturate(s, l, "udp", l.duration, l.udpParams)
	if err != nil {
		return r, fmt.Errorf("UDP: %w", err)
	}
	tcpCPU, tcp, err := saturate(s, l, "tcp", l.tcpLen, l.tcpParams)
	if err != nil {
		return r, fmt.Errorf("TCP: %w", err)
	}
	r.tcpLost, r.tcpSent = tcp.lost, tcp.completed+tcp.lost
	r.udpPerCPU, r.tcpPerCPU = udp.completed/udpCPU.Seconds(), tcp.completed/tcpCPU.Seconds()
	r.perCPU = 1 / ((1-l.tcpShare)/r.udpPerCPU + l.tcpShare/r.tcpPerCPU)
	r.qps = 1 / ((1-l.tcpShare)/udp.qps + l.tcpShare/tcp.qps)

	udpRate := int(math.Round(float64(l.rate) * (1 - l.tcpShare)))
	runs := []struct {
		mode string
		rate int
		out  []byte
		err  error
	}{{mode: "udp", rate: udpRate}, {mode: "tcp", rate: l.rate - udpRate}}
	var wg sync.WaitGroup
	for i := range runs {
		if runs[i].rate == 0 {
			continue
		}
		wg.Go(func() {
			runs[i].out, runs[i].err = dnsperf(s.port, l, runs[i].mode, "-l", seconds(l.latLen), "-c", "2", "-Q", strconv.Itoa(runs[i].rate), "-v")
		})
	}
	wg.Wait()
	var lat []time.Duration
	for _, run := range runs {
		if run.rate == 0 {
			continue
		}
		if run.err != nil {
			return r, fmt.Errorf("latency run over %s: %w", run.mode, run.err)
		}
		lost, err := field(lostRE, run.out)
		if err != nil {
			return r, err
		}
		if lost > 0 && run.mode == "udp" {
			return r, fmt.Errorf("%v queries lost over UDP at %d queries/s: lower -latency-qps", lost, run.rate)
		}
		if run.mode == "tcp" {
			completed, err := field(completedRE, run.out)
			if err != nil {
				return r, err
			}
			r.tcpLost, r.tcpSent = r.tcpLost+lost, r.tcpSent+completed+lost
		}
		l, err := latencies(run.out)
		if err != nil {
			return r, err
		}
		slices.Sort(l)
		if run.mode == "udp" {
			r.p99UDP = l[len(l)*99/100]
		} else {
			r.p99TCP = l[len(l)*99/100]
		}
		lat = append(lat, l...)
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r, nil
}

type dnsperfRun struct{ completed, lost, qps float64 }

// saturate runs dnsperf as fast as the server answers over mode and returns
// the server's CPU time over the run and dnsperf's counts.
func saturate(s *server, l load, mode string, d time.Duration, params []string) (time.Duration, dnsperfRun, error) {
	var r dnsperfRun
	pid := s.cmd.Process.Pid
	before, err := cpuTime(pid)
	if err != nil {
		return 0, r, err
	}
	out, err := dnsperf(s.port, l, mode, append([]string{"-l", seconds(d)}, params...)...)
	if err != nil {
		return 0, r, err
	}
	after, err := cpuTime(pid)
	if err != nil {
		return 0, r, err
	}
	if r.completed, err = field(completedRE, out); err != nil {
		return 0, r, err
	}
	if r.qps, err = field(qpsRE, out); err != nil {
		return 0, r, err
	}
	if r.lost, err = field(lostRE, out); err != nil {
		return 0, r, err
	}
	if after <= before {
		return 0, r, fmt.Errorf("the server used no CPU time over the run")
	}
	return after - before, r, nil
}

// latencies reads dnsperf -v's line per query, "> NOERROR svc-00001.mesh A
// 0.000089", checking each rcode: NXDOMAIN for the nonexistent names,
// NOERROR for the others.
func latencies(out []byte) ([]time.Duration, error) {
	var lat []time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != ">" {
			continue
		}
		want := "NOERROR"
		if strings.HasPrefix(f[2], "nx-") {
			want = "NXDOMAIN"
		}
		if f[1] != want {
			return nil, fmt.Errorf("answered %s for %s %s, want %s", f[1], f[2], f[3], want)
		}
		sec, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			return nil, fmt.Errorf("dnsperf -v line %q: %w", sc.Text(), err)
		}
		lat = append(lat, time.Duration(sec*float64(time.Second)))
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("dnsperf -v printed no latencies:\n%s", tail(out))
	}
	return lat, nil
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
	rcodeRE     = regexp.MustCompile(`(\w+) (\d+) \(`)
	lostRE      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
)

func seconds(d time.Duration) string { return strconv.Itoa(max(1, int(d.Seconds()))) }

// dnsperf runs dnsperf pinned to CPU 1 against port over mode (udp or
// tcp), EDNS0 on, and checks its response codes: only NOERROR and
// NXDOMAIN, NXDOMAIN within two points of its share of the query file.
func dnsperf(port int, l load, mode string, args ...string) ([]byte, error) {
	base := []string{"-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", l.queries, "-m", mode, "-e"}
	cmd := exec.Command("taskset", append(base, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dnsperf: %w\n%s", err, tail(out))
	}
	m := rcodesRE.FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("dnsperf printed no response codes:\n%s", tail(out))
	}
	var total, nx float64
	for _, c := range rcodeRE.FindAllSubmatch(m[1], -1) {
		n, _ := strconv.ParseFloat(string(c[2]), 64)
		switch string(c[1]) {
		case "NOERROR":
		case "NXDOMAIN":
			nx = n
		default:
			return nil, fmt.Errorf("answers other than NOERROR and NXDOMAIN:\n%s", tail(out))
		}
		total += n
	}
	if total == 0 || math.Abs(nx/total-l.nxShare) > 0.02 {
		return nil, fmt.Errorf("NXDOMAIN answered %.0f of %.0f queries, want about %.0f%%:\n%s", nx, total, l.nxShare*100, tail(out))
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
