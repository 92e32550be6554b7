// Package perf measures atoll end to end: a global on embedded etcd and two
// zones, in one process, talking real gRPC (TLS) and HTTP on loopback (and,
// where memory of the global alone is measured, an `atoll global` process
// with zones simulated in the benchmark's process).
// Run with: go test ./test/perf -run '^$' -bench . -benchtime 200x
package perf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/zone"
)

// topology is a running global and zones zone-1, zone-2.
type topology struct {
	global, zone1, zone2 string // API base URLs
}

func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(tb testing.TB, url string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("%s not ready", url)
}

func start(tb testing.TB) *topology {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := tb.TempDir()

	g := global.Default()
	g.APIAddr, g.KDSAddr = freeAddr(tb), freeAddr(tb)
	g.DataDir = filepath.Join(dir, "global")
	g.Etcd.ClientAddr, g.Etcd.PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	wg.Add(1)
	go func() { defer wg.Done(); global.Run(ctx, g, quiet) }()
	t := &topology{global: "http://" + g.APIAddr}
	waitReady(tb, t.global)

	for i, url := range []*string{&t.zone1, &t.zone2} {
		z := zone.Default()
		z.Zone = fmt.Sprintf("zone-%d", i+1)
		z.APIAddr = freeAddr(tb)
		z.DataDir = filepath.Join(dir, z.Zone)
		z.GlobalAddress = "grpcs://" + g.KDSAddr
		z.GlobalCAFile = filepath.Join(g.DataDir, "kds-tls", "kds-ca.pem")
		z.GlobalTokenFile = zoneTokenFile(tb, t.global, z.Zone, dir)
		z.DNS.Addr, z.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0"
		wg.Add(1)
		go func() { defer wg.Done(); zone.Run(ctx, z, quiet) }()
		*url = "http://" + z.APIAddr
		waitReady(tb, *url)
	}
	return t
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func put(tb testing.TB, zoneURL, name, service string, addr, port int) {
	if err := tryPut(zoneURL, name, service, addr, port); err != nil {
		tb.Fatal(err)
	}
}

// tryPut registers Dataplane name with one inbound of service on port, at
// the addr-th address of 10.0.0.0/8.
func tryPut(zoneURL, name, service string, addr, port int) error {
	body := fmt.Sprintf(`{"type":"Dataplane","networking":{"address":"10.%d.%d.%d","inbound":[{"port":%d,"tags":{"atoll.io/service":%q}}]}}`,
		addr>>16&255, addr>>8&255, addr&255, port, service)
	req, _ := http.NewRequest("PUT", zoneURL+"/meshes/default/dataplanes/"+name, bytes.NewReader([]byte(body)))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s", name, resp.Status)
	}
	return nil
}

// visible polls zone-1's view of one service until it answers 200.
func visible(tb testing.TB, zoneURL, service string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(zoneURL + "/meshes/default/services/" + service)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	tb.Fatalf("%s never reached zone-1", service)
}

// measure registers b.N new services in zone-2 one by one and reports the
// p50 and p99 time until each is in zone-1's service view.
func measure(b *testing.B, t *topology, prefix string) {
	var lat []time.Duration
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("%s-%d", prefix, i)
		start := time.Now()
		put(b, t.zone2, name, name, 1<<20+i, 8080)
		visible(b, t.zone1, name)
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPropagationIdle: a Dataplane registered in zone-2 until it is
// visible in zone-1, on an otherwise idle topology.
func BenchmarkPropagationIdle(b *testing.B) {
	t := start(b)
	measure(b, t, "idle")
}

// BenchmarkPropagationLoaded: the same with 10,000 Dataplanes (1,000
// services × 10) already synced and a steady churn of ~100 changes/s in
// zone-2 while measuring, a mix of moves, instances and services coming and
// going (churn).
func BenchmarkPropagationLoaded(b *testing.B) {
	t := start(b)
	const loaded = 10000
	load(b, t.zone2, loaded)
	visible(b, t.zone1, "svc-999")

	stop := churn(t.zone2, loaded, false)
	measure(b, t, "loaded")
	stop(b)
}

// churn changes zone's Dataplanes every 10 ms (~100 changes/s) until stop,
// which reports the changes made per second (churn-changes/s) and the share
// of them that change another zone's view (churn-crossing-%). Of every four
// changes:
//   - two move one of the loaded instances (load-N of svc-N%1000) to another
//     address: instance counts stay, so other zones see nothing unless the
//     mesh is Direct (direct), where the endpoint crosses;
//   - one adds an instance to a loaded service or removes one added five
//     such changes before: its count in the zone's ZoneIngress moves;
//   - one adds a service of its own (a new service tag) or removes one
//     added five such changes before: a service appears or goes.
//
// At the start the removals have nothing to remove yet and add instead.
// A removal may reach the zone before the addition it undoes when both are
// in flight at once; it then fails and is not counted.
func churn(zoneURL string, loaded int, direct bool) (stop func(b *testing.B)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var churned, crossing atomic.Int64
	churnStart := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var instAdded, instRemoved, svcAdded, svcRemoved int
		const lag = 5
		// Up to 8 changes in flight, so that the rate holds while the API
		// is slow; a tick finding all 8 busy is skipped.
		slots := make(chan struct{}, 8)
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for i := 0; ; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				continue
			}
			var change func() error
			crosses := true
			switch i % 4 {
			case 0, 2:
				n, at := (i/2)%loaded, 2<<20+i
				change = func() error {
					return tryPut(zoneURL, fmt.Sprintf("load-%d", n), fmt.Sprintf("svc-%d", n%1000), at, 10000+n%1000)
				}
				crosses = direct
			case 1:
				if instAdded-instRemoved >= lag && (i/4)%2 == 1 {
					name := fmt.Sprintf("churn-inst-%d", instRemoved)
					change = func() error { return tryDelete(zoneURL, name) }
					instRemoved++
				} else {
					k := instAdded
					change = func() error {
						return tryPut(zoneURL, fmt.Sprintf("churn-inst-%d", k), fmt.Sprintf("svc-%d", k%1000), 5<<20+k, 10000+k%1000)
					}
					instAdded++
				}
			case 3:
				if svcAdded-svcRemoved >= lag && (i/4)%2 == 1 {
					name := fmt.Sprintf("churn-svc-%d", svcRemoved)
					change = func() error { return tryDelete(zoneURL, name) }
					svcRemoved++
				} else {
					k := svcAdded
					change = func() error {
						name := fmt.Sprintf("churn-svc-%d", k)
						return tryPut(zoneURL, name, name, 6<<20+k, 9000)
					}
					svcAdded++
				}
			}
			i++
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				defer func() { <-slots }()
				// Errors end nothing; the measurement reports what it saw.
				if change() == nil {
					churned.Add(1)
					if crosses {
						crossing.Add(1)
					}
				}
			}()
		}
	}()
	return func(b *testing.B) {
		cancel()
		<-done
		n := churned.Load()
		b.ReportMetric(float64(n)/time.Since(churnStart).Seconds(), "churn-changes/s")
		if n > 0 {
			b.ReportMetric(100*float64(crossing.Load())/float64(n), "churn-crossing-%")
		}
	}
}

// tryDelete removes Dataplane name from the zone at zoneURL.
func tryDelete(zoneURL, name string) error {
	req, _ := http.NewRequest("DELETE", zoneURL+"/meshes/default/dataplanes/"+name, nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("DELETE %s: %s", name, resp.Status)
	}
	return nil
}

func get(url string) (int, []byte) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func contains(body []byte, s string) bool { return bytes.Contains(body, []byte(s)) }

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
