package perf

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// The churn: churnRate pod events per second for churnWindow, while
// probes measure the time from a pod turning Ready to its service being
// visible in the other zone.
const (
	churnRate   = 50
	churnWindow = 15 * time.Second
	probes      = 20
	probers     = 5 // probing at once, each with probes/probers pods
	idleProbes  = 10
)

// churnState tracks what the churn did to the benchmark's pods.
type churnState struct {
	mu    sync.Mutex
	ready []bool // by pod index
	gen   []int  // by pod index: how often its address changed
}

// churn runs against the running zone z: first idleProbes probes (below)
// with nothing else going on, then a steady stream of pod events
// (status updates moving a pod to a new IP or flipping its Ready
// condition, and pods deleted and created again) at churnRate, while
// probe pods, each the only pod of its Service, are set not Ready, seen
// gone from the other zone, set Ready again: the time from the API
// server acknowledging that status update until the other zone's service
// view lists the service is one sample. It reports the events sent per
// second, the zone's CPU time per event (from the churn's start until
// the other zone shows the final state), and the p50/p99 of the samples.
func (k *kubeTopology) churn(b *testing.B, z *kubeZone) {
	ctx := context.Background()
	k.namespace(b, "probe", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	for j := range probes {
		k.service(b, "probe", fmt.Sprintf("probe-%d", j))
		if err := k.createPod(ctx, "probe", fmt.Sprintf("probe-%d", j), fmt.Sprintf("probe-%d", j), podIP(j, 7), true); err != nil {
			b.Fatal(err)
		}
	}
	until(b, time.Minute, "the other zone to see the probes", func() bool {
		return k.instancesAtOther(z.name) == kubePods+probes
	})

	// The floor: the same probes with nothing else going on.
	var idle []time.Duration
	for s := range idleProbes {
		d, err := k.probe(ctx, s%probes)
		if err != nil {
			b.Fatalf("idle probe %d: %v", s, err)
		}
		idle = append(idle, d)
	}
	slices.Sort(idle)
	b.ReportMetric(float64(idle[len(idle)/2].Microseconds())/1000, "ready-to-other-idle-p50-ms")
	b.ReportMetric(float64(idle[len(idle)-1].Microseconds())/1000, "ready-to-other-idle-max-ms")

	st := &churnState{ready: make([]bool, kubePods), gen: make([]int, kubePods)}
	for i := range st.ready {
		st.ready[i] = true
	}
	var events, failed atomic.Int64
	var firstErr atomic.Value
	apiserver := k.apiserverPID(b)
	cpu0, api0, t0 := z.cpu(b), processCPU(b, apiserver), time.Now()
	cctx, stop := context.WithTimeout(ctx, churnWindow)
	defer stop()
	var wg sync.WaitGroup
	work := make(chan int, churnRate)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				n, err := k.podEvent(ctx, st, i)
				events.Add(int64(n))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		tick := time.NewTicker(time.Second / churnRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-cctx.Done():
				return
			case <-tick.C:
				select {
				case work <- i:
				default: // the workers are behind: the rate reported says so
				}
			}
		}
	}()

	var lat []time.Duration
	var latMu sync.Mutex
	var probeErr atomic.Value
	var probing sync.WaitGroup
	for p := range probers {
		probing.Add(1)
		go func() {
			defer probing.Done()
			// Prober p owns the probe pods p, p+probers, ...
			for s := 0; cctx.Err() == nil; s++ {
				j := p + s*probers%probes
				d, err := k.probe(ctx, j%probes)
				if err != nil {
					probeErr.CompareAndSwap(nil, fmt.Errorf("probe pod %d after %s of churn (%d events sent): %w", j%probes, time.Since(t0), events.Load(), err))
					return
				}
				events.Add(2)
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}
		}()
	}
	probing.Wait()
	if err, ok := probeErr.Load().(error); ok {
		b.Fatal(err)
	}
	wg.Wait()
	sent := time.Since(t0)

	// Settled: the other zone sees exactly the pods left Ready.
	st.mu.Lock()
	want := probes
	for _, r := range st.ready {
		if r {
			want++
		}
	}
	st.mu.Unlock()
	until(b, time.Minute, "the other zone to show the churn's final state", func() bool {
		z.alive(b)
		return k.instancesAtOther(z.name) == want
	})
	cpu := z.cpu(b) - cpu0
	apiCPU := processCPU(b, apiserver) - api0
	elapsed := time.Since(t0)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d pod events failed, the first: %v", f, firstErr.Load())
	}
	slices.Sort(lat)
	ev := float64(events.Load())
	b.ReportMetric(ev/sent.Seconds(), "churn-events/s")
	b.ReportMetric(ev/cpu.Seconds(), "churn-events/cpu-s")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds()*100, "churn-zone-cpu-%core")
	b.ReportMetric(apiCPU.Seconds()/elapsed.Seconds()*100, "churn-apiserver-cpu-%core")
	b.ReportMetric(float64(len(lat)), "ready-samples")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ready-to-other-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ready-to-other-p99-ms")
}

// podEvent makes the i-th churn event, on a pod picked to spread them: two
// in five move the pod to a new address, two in five flip its Ready
// condition, one in five deletes the pod and creates it again (three
// writes: delete, create, status). It returns the pod writes the API
// server acknowledged.
func (k *kubeTopology) podEvent(ctx context.Context, st *churnState, i int) (int, error) {
	p := i * 7919 % kubePods // 7919 is prime: consecutive events hit pods far apart
	ns, name, app := kubePod(p)
	st.mu.Lock()
	ready, gen := st.ready[p], st.gen[p]
	switch i % 5 {
	case 0, 1:
		gen++
		st.gen[p] = gen
	case 2, 3:
		ready = !ready
		st.ready[p] = ready
	case 4:
		gen++
		st.gen[p] = gen
	}
	st.mu.Unlock()
	ip := podIP(p, gen%6) // generations 0-5; 7 is the probes'
	if i%5 != 4 {
		if err := k.setStatus(ctx, ns, name, ip, ready); err != nil {
			return 0, err
		}
		return 1, nil
	}
	zero := int64(0)
	if err := k.admin.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		return 0, fmt.Errorf("deleting pod %s/%s: %w", ns, name, err)
	}
	if err := k.createPod(ctx, ns, name, app, ip, ready); err != nil {
		return 1, err
	}
	return 3, nil
}

// probe sets probe pod j not Ready, waits until the other zone no longer
// lists its service, sets it Ready and returns the time from the API
// server's acknowledgement until the other zone lists the service.
func (k *kubeTopology) probe(ctx context.Context, j int) (time.Duration, error) {
	name := fmt.Sprintf("probe-%d", j)
	url := k.otherURL + "/meshes/default/services/" + name + "_probe_svc_80"
	ip := podIP(j, 7)
	if err := k.setStatus(ctx, "probe", name, ip, false); err != nil {
		return 0, err
	}
	if err := pollStatus(url, http.StatusNotFound, 30*time.Second); err != nil {
		return 0, err
	}
	if err := k.setStatus(ctx, "probe", name, ip, true); err != nil {
		return 0, err
	}
	acked := time.Now()
	if err := pollStatus(url, http.StatusOK, 30*time.Second); err != nil {
		return 0, err
	}
	return time.Since(acked), nil
}

// pollStatus polls url every half millisecond until it answers want.
func pollStatus(url string, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		status, _ := get(url)
		if status == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s answered %d for %s, want %d", url, status, limit, want)
		}
		time.Sleep(500 * time.Microsecond)
	}
}
