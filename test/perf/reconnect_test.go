package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/zone"
)

// runningGlobal is a global that can be stopped and started again.
type runningGlobal struct {
	cfg  global.Config
	stop func()
}

func startGlobal(tb testing.TB, cfg global.Config) *runningGlobal {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		global.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitReady(tb, "http://"+cfg.APIAddr)
	g := &runningGlobal{cfg: cfg, stop: func() { cancel(); <-done }}
	tb.Cleanup(g.stop)
	return g
}

func startZone(tb testing.TB, cfg zone.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		zone.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	tb.Cleanup(func() { cancel(); <-done })
	waitReady(tb, "http://"+cfg.APIAddr)
}

type zoneStatus struct {
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	Stats     map[string]struct {
		Sent       uint64
		Subscribed bool
	} `json:"stats"`
}

func statusOf(tb testing.TB, url string) zoneStatus {
	resp, err := client.Get(url + "/zone")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var s zoneStatus
	json.NewDecoder(resp.Body).Decode(&s)
	return s
}

// reconciled waits until a session of the zone that began after after has
// exchanged its Dataplanes and ZoneIngress.
func reconciled(tb testing.TB, url string, after time.Time) zoneStatus {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		s := statusOf(tb, url)
		if s.Connected && s.Since.After(after) && s.Stats["Dataplane"].Subscribed && s.Stats["ZoneIngress"].Subscribed {
			return s
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatal("zone never reconciled")
	return zoneStatus{}
}

func globalCount(tb testing.TB, url string) int {
	resp, err := client.Get(url + "/zones/zone-1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Dataplanes int `json:"dataplanes"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Dataplanes
}

func load(tb testing.TB, zoneURL string, n int) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				// The 10 instances of a service share its port, as they do.
				if err := tryPut(zoneURL, fmt.Sprintf("load-%d", i), fmt.Sprintf("svc-%d", i%1000), int(i), int(10000+i%1000)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkZoneWith10kDataplanes measures, for a zone holding 10,000
// Dataplanes: the CPU the whole topology (global and zone, one process)
// burns while idle; the time for an unchanged reconnect (global restarted
// on the same data) and the resources it re-sends; and the time for a full
// resync to a global that has nothing (a new data directory).
func BenchmarkZoneWith10kDataplanes(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	g := global.Default()
	g.APIAddr, g.KDSAddr = freeAddr(b), freeAddr(b)
	g.DataDir = filepath.Join(dir, "global")
	g.Etcd.ClientAddr, g.Etcd.PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	g.KDS.Insecure = true
	running := startGlobal(b, g)

	z := zone.Default()
	z.Zone, z.APIAddr, z.DataDir = "zone-1", freeAddr(b), filepath.Join(dir, "zone-1")
	z.GlobalAddress, z.KDSInsecure = "grpc://"+g.KDSAddr, true
	z.GlobalTokenFile = zoneTokenFile(b, "http://"+g.APIAddr, z.Zone, dir)
	z.DNS.Addr, z.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0"
	startZone(b, z)
	zoneURL, globalURL := "http://"+z.APIAddr, "http://"+g.APIAddr
	load(b, zoneURL, n)
	waitCount(b, globalURL, n)

	// Idle: nothing polls, so nothing should burn CPU. The window starts
	// once the work the load left behind (gathered pushes, the DNS table,
	// the first compaction of etcd) has had two seconds to finish.
	time.Sleep(2 * time.Second)
	const idle = 10 * time.Second
	before := cpuTime()
	time.Sleep(idle)
	idleCPU := float64(cpuTime()-before) / float64(idle) * 100

	var unchanged time.Duration
	var resent uint64
	for b.Loop() {
		running.stop()
		stopped := time.Now()
		running = startGlobal(b, g)
		s := reconciled(b, zoneURL, stopped)
		// From the zone's (re)connect, not counting the global's start and
		// the zone's backoff while the global was down.
		unchanged += time.Since(s.Since)
		for _, st := range s.Stats {
			resent += st.Sent
		}
	}

	// Full resync: a global with an empty store at the same address.
	running.stop()
	g.DataDir = filepath.Join(dir, "global-new")
	running = startGlobal(b, g)
	// A new global has new signing keys: the operator gives the zone a
	// token of the new global, which it reads on its next connection.
	zoneTokenFile(b, globalURL, z.Zone, dir)
	waitCount(b, globalURL, n)
	full := time.Since(statusOf(b, zoneURL).Since)

	b.ReportMetric(idleCPU, "idle-cpu-%core")
	b.ReportMetric(float64(unchanged.Milliseconds())/float64(b.N), "unchanged-reconnect-ms")
	b.ReportMetric(float64(resent)/float64(b.N), "unchanged-reconnect-resent")
	b.ReportMetric(float64(full.Milliseconds()), "full-resync-ms")
}

// waitCount waits until the global holds n Dataplanes, failing after 5
// minutes rather than hanging the benchmark.
func waitCount(b *testing.B, globalURL string, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for globalCount(b, globalURL) != n {
		if time.Now().After(deadline) {
			b.Fatalf("the global never held the zone's %d Dataplanes", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
