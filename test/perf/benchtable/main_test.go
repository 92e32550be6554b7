package main

import (
	"bytes"
	"strings"
	"testing"
)

// The table reads go test -bench lines and dnsbench's line, and states a
// miss, a measure not produced and a met target as such.
func TestTable(t *testing.T) {
	log := `BenchmarkPropagationIdle-2   	     200	  20716601 ns/op	        20.52 p50-ms	        30.05 p99-ms
BenchmarkPropagationLoaded-2 	     200	  29564237 ns/op	        97.56 churn-changes/s	        27.81 p50-ms	       157.9 p99-ms
BenchmarkMeshUpdate/one-endpoint-2       	   12691	     94327 ns/op	    1815 B/op	      29 allocs/op
dnsbench: qps-per-cpu-ratio=2.19 p99-atoll-ms=0.224 p99-coredns-ms=1.868
`
	values, err := parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if v := values["BenchmarkMeshUpdate/one-endpoint"]["ns/op"]; v != 94327 {
		t.Errorf("one-endpoint ns/op = %v", v)
	}
	var out bytes.Buffer
	missed := print(&out, values)
	table := out.String()
	for _, want := range []string{
		"KDS propagation, idle, p99  ",
		"30.1 ms",
		"158 ms",
		"0.0943 ms",
		"not measured (BenchmarkGlobal50k rss-KiB/dataplane)",
		"0.224 ms vs 1.87 ms",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
	lines := map[string]string{}
	for _, l := range strings.Split(table, "\n") {
		for _, m := range []string{"KDS propagation, idle, p99", "KDS propagation, loaded", "DNS vs CoreDNS: queries per CPU-second", "xDS caches after one endpoint"} {
			if strings.HasPrefix(l, m) {
				lines[m] = l
			}
		}
	}
	for m, verdict := range map[string]string{"KDS propagation, idle, p99": "met", "KDS propagation, loaded": "MISSED",
		"DNS vs CoreDNS: queries per CPU-second": "met", "xDS caches after one endpoint": "met"} {
		if f := strings.Fields(lines[m]); len(f) == 0 || f[len(f)-1] != verdict {
			t.Errorf("%s: %q, want %s", m, lines[m], verdict)
		}
	}
	// 24 measures: 5 present (4 met, 1 missed), 19 not measured.
	if missed != 20 {
		t.Errorf("%d missed, want 20:\n%s", missed, table)
	}
}
