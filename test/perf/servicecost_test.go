package perf

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/kds"
)

// BenchmarkNewServiceCost: what one new service costs each hop when a zone
// already offers n services (one instance each), with n = 100 and 10,000:
// the bytes of the pushes zone-2 sends the global for it (its Dataplane and
// its service summary) and of those zone-1 receives from the global (the
// summary relayed and its VIP), as both zones' KDS sessions count them, and
// the time until zone-1 serves the service with the VIP the global
// assigned. The two sizes side by side show whether the cost grows with
// the number of services.
func BenchmarkNewServiceCost(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("services-%d", n), func(b *testing.B) {
			t := start(b)
			loadServices(b, t.zone2, 0, n)
			waitConfirmed(b, t.zone1, n, 5*time.Minute)
			var lat []time.Duration
			var sent, received uint64
			i := n
			for b.Loop() {
				before2, before1 := kdsStats(b, t.zone2), kdsStats(b, t.zone1)
				start := time.Now()
				loadServices(b, t.zone2, i, 1)
				visible(b, t.zone1, fmt.Sprintf("cost-svc-%d", i))
				lat = append(lat, time.Since(start))
				// Then its VIP, which the global assigns once the summary
				// reached it.
				deadline := time.Now().Add(30 * time.Second)
				for kdsStats(b, t.zone1)["VIPTable"].Received == before1["VIPTable"].Received {
					if time.Now().After(deadline) {
						b.Fatalf("zone-1 got no VIP for cost-svc-%d within 30s", i)
					}
					time.Sleep(time.Millisecond)
				}
				sent += pushBytes(kdsStats(b, t.zone2), true) - pushBytes(before2, true)
				received += pushBytes(kdsStats(b, t.zone1), false) - pushBytes(before1, false)
				i++
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(sent)/float64(len(lat)), "zone-to-global-B/service")
			b.ReportMetric(float64(received)/float64(len(lat)), "global-to-zone-B/service")
		})
	}
}

// loadServices registers n Dataplanes in the zone, from the first-th on,
// each with a service of its own.
func loadServices(tb testing.TB, zoneURL string, first, n int) {
	var wg sync.WaitGroup
	var next atomic.Int64
	next.Store(int64(first))
	errs := make(chan error, 16)
	for range min(16, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= first+n {
					return
				}
				if err := tryPut(zoneURL, fmt.Sprintf("cost-%d", i), fmt.Sprintf("cost-svc-%d", i), 2<<20+i, 8080); err != nil {
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

// waitConfirmed waits until the zone serves at least n services with a
// VIP the global assigned.
func waitConfirmed(tb testing.TB, zoneURL string, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	got := 0
	for time.Now().Before(deadline) {
		if status, body := get(zoneURL + "/meshes/default/vips"); status == 200 {
			var l struct {
				Items []struct {
					VIP      string `json:"vip"`
					Proposed bool   `json:"proposed"`
				} `json:"items"`
			}
			if json.Unmarshal(body, &l) == nil {
				got = 0
				for _, it := range l.Items {
					if it.VIP != "" && !it.Proposed {
						got++
					}
				}
				if got >= n {
					return
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("%s serves %d of %d services with a VIP from the global after %v", zoneURL, got, n, within)
}

// kdsStats is the zone's count of its KDS session's traffic, by type.
func kdsStats(tb testing.TB, zoneURL string) map[string]kds.TypeStats {
	status, body := get(zoneURL + "/zone")
	var st struct {
		Stats map[string]kds.TypeStats `json:"stats"`
	}
	if status != 200 || json.Unmarshal(body, &st) != nil {
		tb.Fatalf("GET %s/zone: %d %s", zoneURL, status, body)
	}
	return st.Stats
}

// pushBytes is how many bytes of pushes stats count sent (sent) or
// received, over every type.
func pushBytes(stats map[string]kds.TypeStats, sent bool) uint64 {
	var n uint64
	for _, s := range stats {
		if sent {
			n += s.SentBytes
		} else {
			n += s.ReceivedBytes
		}
	}
	return n
}
