// Command benchtable reads the output of `make bench` (go test -bench lines
// and dnsbench's summary line) and prints one table: each measure, its
// target, the result and whether the target was met. A measure the output
// lacks is printed as not measured, and counts as missed.
//
//	go run ./test/perf/benchtable < bench.log
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// row is one measure of the table: the value of unit in the output of
// benchmark bench (its name without the -GOMAXPROCS suffix), compared with
// target.
type row struct {
	measure string
	bench   string
	unit    string
	// atMost: met when the value is ≤ target; else when ≥ target.
	atMost bool
	target float64
	// scale turns the value into the shown unit; show is that unit.
	scale float64
	show  string
}

// rows are the measures and the targets the README states for them.
var rows = []row{
	{"KDS propagation, idle, p99", "BenchmarkPropagationIdle", "p99-ms", true, 100, 1, "ms"},
	{"KDS propagation, loaded (10,000 Dataplanes, churn), p99", "BenchmarkPropagationLoaded", "p99-ms", true, 100, 1, "ms"},
	{"convergence to a proxy, idle, p99", "BenchmarkProxyConvergence/idle", "p99-ms", true, 100, 1, "ms"},
	{"convergence to a proxy, loaded, p99", "BenchmarkProxyConvergence/loaded", "p99-ms", true, 100, 1, "ms"},
	{"convergence to grpc-go's xDS client subscribed to every service, p99", "BenchmarkProxyConvergence/grpc-go-all", "p99-ms", true, 100, 1, "ms"},
	{"one endpoint change to 1,000 grpc-go-style proxies, until all ACKed", "BenchmarkPushTo1000Proxies/grpc-sotw-calling-svc-500", "max-all-acked-ms", true, 500, 1, "ms"},
	{"one endpoint change to 1,000 Envoy delta proxies (1,000 clusters each), until all ACKed", "BenchmarkPushTo1000Proxies/envoy-delta-all-1000-clusters", "max-all-acked-ms", true, 500, 1, "ms"},
	{"xDS caches of a mesh built whole (1,000 services × 10 endpoints, Envoy)", "BenchmarkMeshUpdate/full-envoy", "ns/op", true, 10, 1e-6, "ms"},
	{"xDS caches after one endpoint changed", "BenchmarkMeshUpdate/one-endpoint", "ns/op", true, 1, 1e-6, "ms"},
	{"DNS handler, A query for a known name, allocations", "BenchmarkServeDNS", "allocs/op", true, 2, 1, "allocs"},
	{"zone with 10,000 Dataplanes: idle CPU of global, etcd and zone together", "BenchmarkZoneWith10kDataplanes", "idle-cpu-%core", true, 1, 1, "% of a core"},
	{"zone with 10,000 Dataplanes: unchanged reconnect", "BenchmarkZoneWith10kDataplanes", "unchanged-reconnect-ms", true, 200, 1, "ms"},
	{"zone with 10,000 Dataplanes: resources re-sent on an unchanged reconnect", "BenchmarkZoneWith10kDataplanes", "unchanged-reconnect-resent", true, 0, 1, ""},
	{"zone with 10,000 Dataplanes: full resync", "BenchmarkZoneWith10kDataplanes", "full-resync-ms", true, 2000, 1, "ms"},
	{"global with 50,000 Dataplanes: Go heap per Dataplane", "BenchmarkGlobal50k", "heap-KiB/dataplane", true, 20000.0 / 1024, 1, "KiB"},
	{"global with 50,000 Dataplanes: resident memory per Dataplane (embedded etcd included)", "BenchmarkGlobal50k", "rss-KiB/dataplane", true, 20000.0 / 1024, 1, "KiB"},
	{"global with 50,000 Dataplanes: etcd transactions per change", "BenchmarkGlobal50k", "etcd-txns/change", true, 1, 1, ""},
	{"global with 50,000 Dataplanes in a Direct mesh: one change until the global holds it", "BenchmarkGlobal50k", "ns/op", true, 100, 1e-6, "ms"},
	{"a new service in a zone of 10,000: pushed zone → global", "BenchmarkNewServiceCost/services-10000", "zone-to-global-B/service", true, 4096, 1, "B"},
	{"a new service in a zone of 10,000: pushed global → another zone", "BenchmarkNewServiceCost/services-10000", "global-to-zone-B/service", true, 4096, 1, "B"},
	{"a new service in a zone of 10,000: until another zone serves it, p99", "BenchmarkNewServiceCost/services-10000", "p99-ms", true, 100, 1, "ms"},
	{"Kubernetes zone, 2,000 pods, cold start until the global holds them all", "BenchmarkKubernetes2000Pods", "cold-global-s", true, 5, 1, "s"},
	{"DNS vs CoreDNS: queries per CPU-second, ratio", "dnsbench", "qps-per-cpu-ratio", false, 1.5, 1, "×"},
}

func main() {
	values, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	missed := print(os.Stdout, values)
	fmt.Printf("\n%d of %d targets met", len(rows)+1-missed, len(rows)+1)
	if missed > 0 {
		fmt.Printf("; %d missed or not measured (above, MISSED)", missed)
	}
	fmt.Println()
}

// parse collects benchmark → unit → value from go test -bench lines and
// dnsbench's "dnsbench: k=v ..." line; a benchmark run twice keeps its
// last value.
func parse(r io.Reader) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	set := func(bench, unit string, v float64) {
		if out[bench] == nil {
			out[bench] = map[string]float64{}
		}
		out[bench][unit] = v
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "dnsbench:"); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if f, err := strconv.ParseFloat(v, 64); ok && err == nil {
					set("dnsbench", k, f)
				}
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		// f[1] is the iteration count; then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			set(name, f[i+1], v)
		}
	}
	return out, sc.Err()
}

// print writes the table and returns how many targets were missed or not
// measured.
func print(w io.Writer, values map[string]map[string]float64) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tTARGET\tRESULT\tMET\t")
	missed := 0
	for _, r := range rows {
		target := fmt.Sprintf("≤ %s %s", num(r.target), r.show)
		if !r.atMost {
			target = fmt.Sprintf("≥ %s%s", num(r.target), r.show)
		}
		v, ok := values[r.bench][r.unit]
		if !ok {
			missed++
			fmt.Fprintf(tw, "%s\t%s\tnot measured (%s %s)\tMISSED\t\n", r.measure, target, r.bench, r.unit)
			continue
		}
		v *= r.scale
		met := v <= r.target
		if !r.atMost {
			met = v >= r.target
		}
		verdict := "met"
		if !met {
			verdict, missed = "MISSED", missed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t\n", r.measure, target, num(v), r.show, verdict)
	}
	// DNS latency: no worse than CoreDNS, measured in the same run.
	a, okA := values["dnsbench"]["p99-atoll-ms"]
	c, okC := values["dnsbench"]["p99-coredns-ms"]
	switch {
	case !okA || !okC:
		missed++
		fmt.Fprintf(tw, "DNS vs CoreDNS: p99 latency\tno worse than CoreDNS\tnot measured\tMISSED\t\n")
	case a <= c:
		fmt.Fprintf(tw, "DNS vs CoreDNS: p99 latency\tno worse than CoreDNS\t%s ms vs %s ms\tmet\t\n", num(a), num(c))
	default:
		missed++
		fmt.Fprintf(tw, "DNS vs CoreDNS: p99 latency\tno worse than CoreDNS\t%s ms vs %s ms\tMISSED\t\n", num(a), num(c))
	}
	tw.Flush()
	return missed
}

// num prints v with three significant digits, or whole when larger.
func num(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
