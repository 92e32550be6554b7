package perf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

// realisticDataplane is the i-th Dataplane of a synthetic zone: a workload
// with three inbounds (its HTTP API, a gRPC port and an admin port), each a
// service of its own, with the tags deployments carry (version, team,
// protocol, region), 1,000 workloads' services per zone. The first
// inbound's port is port.
func realisticDataplane(i int, port uint32) *resource.Resource {
	svc := fmt.Sprintf("svc-%d", i%1000)
	tags := func(service, protocol string) map[string]string {
		return map[string]string{
			resource.ServiceTag:  service,
			resource.ProtocolTag: protocol,
			"version":            fmt.Sprintf("v%d", 1+i%3),
			"team":               fmt.Sprintf("team-%d", i%1000/50),
			"region":             "eu-west-1",
		}
	}
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: fmt.Sprintf("dp-%d", i)},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
			Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Inbound: []*v1alpha1.Dataplane_Networking_Inbound{
				{Port: port, ServicePort: 8080, Tags: tags(svc, "http")},
				{Port: 9090, Tags: tags(svc+"-grpc", "grpc")},
				{Port: 9901, Tags: tags(svc+"-admin", "http")},
			},
		}},
	}
}

// globalProcess is an `atoll global` process of its own, so its memory is
// its own (embedded etcd included).
type globalProcess struct {
	cmd                 *exec.Cmd
	url, kds, etcd, pfx string
}

func startGlobalProcess(b *testing.B) *globalProcess {
	dir := b.TempDir()
	bin := buildAtoll(b, dir)
	g := &globalProcess{kds: freeAddr(b), etcd: freeAddr(b), pfx: "/atoll/"}
	api := freeAddr(b)
	g.url = "http://" + api
	g.cmd = exec.Command(bin, "global", "--api-addr", api, "--kds-addr", g.kds, "--kds-insecure",
		"--data-dir", filepath.Join(dir, "global"), "--etcd-client-addr", g.etcd, "--etcd-peer-addr", freeAddr(b),
		"--log-level", "warn")
	logs, err := os.Create(filepath.Join(dir, "global.log"))
	if err != nil {
		b.Fatal(err)
	}
	g.cmd.Stdout, g.cmd.Stderr = logs, logs
	if err := g.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		g.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { g.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			g.cmd.Process.Kill()
			<-done
		}
		logs.Close()
	})
	waitReady(b, g.url)
	return g
}

// status reads a field (VmRSS, VmHWM) of the process's /proc status, in
// bytes.
func (g *globalProcess) status(b *testing.B, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, g.cmd.Process.Pid)
	return 0
}

// metric reads one gauge of the process's /metrics, -1 when absent.
func (g *globalProcess) metric(name string) float64 {
	status, body := get(g.url + "/metrics")
	if status != http.StatusOK {
		return -1
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// settle waits until the global's resident memory has not moved by more
// than 1 % over two seconds (bounded by 30 s), and returns it.
func (g *globalProcess) settle(b *testing.B) float64 {
	prev := g.status(b, "VmRSS")
	for range 15 {
		time.Sleep(2 * time.Second)
		cur := g.status(b, "VmRSS")
		if d := cur - prev; d < prev/100 && -d < prev/100 {
			return cur
		}
		prev = cur
	}
	return prev
}

// BenchmarkGlobal50k syncs 50,000 Dataplanes (realisticDataplane: three
// inbounds each) from ten zones into one global running as an `atoll global`
// process on its embedded etcd, with a Direct mesh so the global also keeps
// its endpoint index, and reports the global's memory per synced Dataplane,
// how many etcd transactions one Dataplane change costs and how long the
// sync took. Memory per Dataplane is the global's resident memory
// (/proc/PID/status VmRSS, settled) after the sync minus before it, over
// the count; peak-rss-KiB/dataplane is the same from its high-water mark
// (VmHWM); heap-KiB/dataplane is from the heap in use its /metrics reports
// (go_memstats_heap_inuse_bytes, no garbage collection forced, so garbage
// not yet collected counts too). The zones are simulated in the benchmark's process over real
// gRPC (plaintext KDS).
func BenchmarkGlobal50k(b *testing.B) {
	const zones, perZone = 10, 5000
	g := startGlobalProcess(b)
	if status, body := do("PUT", g.url+"/meshes/default", `{"type":"Mesh","crossZone":{"mode":"Direct"}}`); status/100 != 2 {
		b.Fatalf("%d %s", status, body)
	}
	rssBefore := g.settle(b)
	heapBefore := g.metric("go_memstats_heap_inuse_bytes")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	synthetic := make([]*syntheticZone, zones)
	clients := make([]*kds.Client, zones)
	for i := range zones {
		z := &syntheticZone{dps: map[string]*v1alpha1.WireResource{}}
		for j := range perZone {
			z.set(b, j, uint32(1+j%60000))
		}
		synthetic[i] = z
		token := zoneToken(b, g.url, fmt.Sprintf("zone-%d", i+1))
		clients[i] = kds.NewClient(kds.ClientConfig{
			Address: g.kds, Zone: fmt.Sprintf("zone-%d", i+1),
			Token: func() (string, error) { return token, nil },
			Log:   slogDiscard(),
		}, z)
		wg.Add(1)
		go func() { defer wg.Done(); clients[i].Run(ctx) }()
	}
	start := time.Now()
	for i := range zones {
		for zoneDataplanes(g.url, fmt.Sprintf("zone-%d", i+1)) != perZone {
			if time.Since(start) > 5*time.Minute {
				b.Fatal("the global never got every Dataplane")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	synced := time.Since(start)
	rssAfter := g.settle(b)
	heapAfter := g.metric("go_memstats_heap_inuse_bytes")
	hwm := g.status(b, "VmHWM")

	// Count etcd transactions that touch Dataplanes while one zone
	// changes one Dataplane at a time: every etcd write transaction has
	// its own revision.
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + g.etcd}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer etcd.Close()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	revs := map[int64]bool{}
	var revMu sync.Mutex
	ready := make(chan struct{})
	go func() {
		ch := etcd.Watch(wctx, g.pfx+"resources/Dataplane/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		for resp := range ch {
			if resp.Created {
				close(ready)
				continue
			}
			revMu.Lock()
			for _, e := range resp.Events {
				revs[e.Kv.ModRevision] = true
			}
			revMu.Unlock()
		}
	}()
	<-ready
	changes := 0
	for b.Loop() {
		port := uint32(61000 + changes%4000)
		synthetic[0].set(b, 0, port)
		clients[0].Changed(resource.DataplaneType)
		changes++
		for {
			status, body := get(g.url + "/meshes/default/dataplanes/dp-0.zone-1")
			if status == http.StatusOK && json.Valid(body) && contains(body, fmt.Sprintf(`"port":%d`, port)) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	wcancel()
	revMu.Lock()
	txns := float64(len(revs)) / float64(changes)
	revMu.Unlock()

	const n = zones * perZone
	b.ReportMetric((rssAfter-rssBefore)/n/1024, "rss-KiB/dataplane")
	if heapBefore >= 0 && heapAfter >= 0 {
		b.ReportMetric((heapAfter-heapBefore)/n/1024, "heap-KiB/dataplane")
	}
	b.ReportMetric((hwm-rssBefore)/n/1024, "peak-rss-KiB/dataplane")
	b.ReportMetric(rssAfter/(1<<20), "rss-MiB")
	b.ReportMetric(hwm/(1<<20), "hwm-MiB")
	b.ReportMetric(txns, "etcd-txns/change")
	b.ReportMetric(synced.Seconds(), "sync-50k-s")
}
