package perf

import (
	"fmt"
	"testing"
	"time"
)

// Log messages of a Kubernetes zone that mark the phases of its start.
const (
	logModeOpened   = "kubernetes mode"                      // config read, API server and CRDs checked
	logCachesFilled = "caches filled, reconciling every pod" // informers synced
	logReconciled   = "watching pods"                        // every Dataplane written as a custom resource
)

// BenchmarkKubernetes2000Pods measures a Kubernetes zone against a real
// kube-apiserver already holding 2,000 running, Ready pods in 10 mesh
// namespaces (100 Services), with a global and a second, universal zone:
//
//   - cold start (each iteration a new zone process, with its own name and
//     system namespace, after the previous one's Dataplanes were deleted):
//     the time from starting the process until its checks pass, its
//     caches are filled, every Dataplane exists as a custom resource, the
//     global holds all 2,000, and the other zone sees all 2,000 instances;
//     and the zone's CPU time until the global held them;
//   - the baseline: the same zone with controller-runtime's default client
//     limits (20 requests/s, burst 30), run for a bounded window and its
//     rate of Dataplane creation extrapolated to 2,000;
//   - steady churn after the last cold start (see churn).
//
// The zone authenticates as a ServiceAccount, so API Priority and Fairness
// treats its requests as a deployed zone's (the admin is exempt).
func BenchmarkKubernetes2000Pods(b *testing.B) {
	k := startKube(b)
	populated := time.Now()
	k.populate(b)
	b.ReportMetric(time.Since(populated).Seconds(), "populate-s")
	b.Logf("populated %d pods in %s", kubePods, time.Since(populated))

	baseline := k.baseline(b)

	var prev *kubeZone
	apiserver := k.apiserverPID(b)
	var opened, filled, crs, atGlobal, atOther, cpu, apiCPU time.Duration
	n := 0
	for b.Loop() {
		if prev != nil {
			prev.stop()
			k.deleteDataplaneCRs(b, "atoll-"+prev.name)
		}
		n++
		api0 := processCPU(b, apiserver)
		z := k.startKubeZone(b, fmt.Sprintf("kube-%d", n), fmt.Sprintf("atoll-kube-%d", n))
		var reached time.Time
		k.untilZone(b, z, 2*time.Minute, "the global to hold every Dataplane", func() bool {
			n, at := k.atGlobal.count(z.name)
			reached = at
			return n == kubePods
		})
		global := reached.Sub(z.started)
		cpu += z.cpu(b)
		apiCPU += processCPU(b, apiserver) - api0
		until(b, time.Minute, "the other zone to see every instance", func() bool {
			return k.instancesAtOther(z.name) == kubePods
		})
		other := time.Since(z.started)
		b.Logf("cold start %s: checked %s, caches %s, custom resources %s, global %s, other zone %s; zone CPU %s",
			z.name, z.at(b, logModeOpened), z.at(b, logCachesFilled), z.at(b, logReconciled), global, other, z.cpu(b))
		b.Logf("the kube-apiserver's CPU over that cold start: %s", processCPU(b, apiserver)-api0)
		atOther += other
		atGlobal += global
		opened += z.at(b, logModeOpened)
		filled += z.at(b, logCachesFilled)
		crs += z.at(b, logReconciled)
		if got := k.dataplaneCRs(b, "atoll-"+z.name); got != kubePods {
			b.Fatalf("zone %s wrote %d Dataplane custom resources, want %d", z.name, got, kubePods)
		}
		prev = z
	}
	avg := func(d time.Duration) float64 { return d.Seconds() / float64(n) }
	b.ReportMetric(avg(opened), "cold-checked-s")
	b.ReportMetric(avg(filled), "cold-caches-s")
	b.ReportMetric(avg(crs), "cold-crs-s")
	b.ReportMetric(avg(atGlobal), "cold-global-s")
	b.ReportMetric(avg(atOther), "cold-other-zone-s")
	b.ReportMetric(avg(cpu), "cold-zone-cpu-s")
	b.ReportMetric(avg(apiCPU), "cold-apiserver-cpu-s")
	b.ReportMetric(baseline, "baseline-crs-s")
	b.ReportMetric(baseline/avg(crs), "crs-speedup-x")

	k.churn(b, prev)
}

// baselineWindow is how long the baseline zone runs once its caches are
// filled, to measure its rate.
const baselineWindow = 8 * time.Second

// baseline runs the zone with controller-runtime's default client limits
// (QPS 20, burst 30: what a controller built on it gets unless it raises
// them) for baselineWindow after its caches are filled, and returns the
// time it would take to write every Dataplane custom resource: the time
// to fill its caches plus kubePods at the rate measured over the window
// (after the burst is spent). Its Dataplanes are deleted afterwards.
func (k *kubeTopology) baseline(b *testing.B) float64 {
	z := k.startKubeZone(b, "baseline", "atoll-baseline", "--kube-api-qps", "20", "--kube-api-burst", "30")
	until(b, time.Minute, "the baseline zone's caches", func() bool {
		z.alive(b)
		z.mu.Lock()
		defer z.mu.Unlock()
		_, ok := z.seen[logCachesFilled]
		return ok
	})
	filled := z.at(b, logCachesFilled)
	time.Sleep(2 * time.Second) // past the burst
	n0, t0 := k.dataplaneCRs(b, "atoll-baseline"), time.Now()
	time.Sleep(baselineWindow)
	n1, t1 := k.dataplaneCRs(b, "atoll-baseline"), time.Now()
	z.stop()
	k.deleteDataplaneCRs(b, "atoll-baseline")
	rate := float64(n1-n0) / t1.Sub(t0).Seconds()
	if rate <= 0 {
		b.Fatalf("the baseline zone wrote no Dataplanes in %s", t1.Sub(t0))
	}
	b.Logf("baseline: caches %s, %d Dataplanes in %s: %.1f/s", filled, n1-n0, t1.Sub(t0), rate)
	b.ReportMetric(rate, "baseline-crs/s")
	return filled.Seconds() + kubePods/rate
}
