package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/kds"
)

// Scale of one zone's services: 10,000 services in zone-1 (one Dataplane
// each) reach zone-2 with a VIP confirmed by the global, and
//   - no value the global keeps in etcd is over maxRecordBytes: a zone's
//     service summary and a mesh's VIP assignments are kept per service,
//     so no stored value grows with the number of services;
//   - no resource either zone sent or received over KDS is over
//     maxRecordBytes, and no message over the KDS message limit;
//   - one more service costs each hop (zone-1 → global, global → zone-2)
//     a few small records, not a summary of all 10,000.
//
// The global runs on an etcd of the test's own, which the test reads.
func TestTenThousandServicesInOneZone(t *testing.T) {
	const (
		services = 10000
		// maxRecordBytes bounds each stored value and each resource on the
		// wire. A summary of 10,000 services in one value would be ~450 KB.
		maxRecordBytes = 8 << 10
		// maxNewServiceBytes bounds what one new service adds to the
		// pushes of each hop.
		maxNewServiceBytes = 4 << 10
	)
	srv, etcd := etcdtest.Start(t, t.TempDir())
	kdsAddr := freePort(t)
	g := startGlobal(t, t.TempDir(), "--kds-addr", kdsAddr, "--etcd-endpoints", srv.ClientEndpoint())
	caFile := g.caFile()
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), kdsAddr, caFile)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, caFile)

	start := time.Now()
	registerServices(t, z1.apiURL, 0, services)
	t.Logf("registered %d services in zone-1 in %v", services, time.Since(start).Round(time.Millisecond))
	waitFor(t, 5*time.Minute, "zone-2 holding a confirmed VIP for each of zone-1's services", func() error {
		if n := confirmedVIPs(t, z2.apiURL); n != services {
			return fmt.Errorf("zone-2 has a VIP from the global for %d of %d services", n, services)
		}
		return nil
	})
	t.Logf("zone-2 had every service with its VIP %v after the first registration", time.Since(start).Round(time.Millisecond))

	// Every value in etcd.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys, total, largest int
	var largestKey string
	for from := "\x00"; ; {
		resp, err := etcd.Get(ctx, from, clientv3.WithRange("\x00"), clientv3.WithLimit(1000))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			keys++
			total += len(kv.Value)
			if len(kv.Value) > largest {
				largest, largestKey = len(kv.Value), string(kv.Key)
			}
		}
		if !resp.More {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	t.Logf("etcd holds %d keys, %d bytes of values; the largest is %s, %d bytes", keys, total, largestKey, largest)
	if largest > maxRecordBytes {
		t.Errorf("etcd value %s is %d bytes, over %d: a stored value grows with the number of services", largestKey, largest, maxRecordBytes)
	}

	// Every resource and message over KDS, as both zones count them.
	before := map[string]map[string]kds.TypeStats{}
	for _, z := range []*process{z1, z2} {
		stats := kdsStats(t, z.apiURL)
		before[z.apiURL] = stats
		for typ, s := range stats {
			t.Logf("%s %s: largest resource %d bytes, largest push %d bytes, %d bytes sent, %d received",
				z.apiURL, typ, s.LargestResourceBytes, s.LargestPushBytes, s.SentBytes, s.ReceivedBytes)
			if s.LargestResourceBytes > maxRecordBytes {
				t.Errorf("%s: a %s of %d bytes went over KDS, over %d", z.apiURL, typ, s.LargestResourceBytes, maxRecordBytes)
			}
			if s.LargestPushBytes > kds.DefaultMaxMessageSize {
				t.Errorf("%s: a push of %s of %d bytes, over the message limit %d", z.apiURL, typ, s.LargestPushBytes, kds.DefaultMaxMessageSize)
			}
		}
	}

	// One more service, per hop.
	registerServices(t, z1.apiURL, services, 1)
	waitFor(t, time.Minute, "zone-2 holding a confirmed VIP for the new service", func() error {
		if n := confirmedVIPs(t, z2.apiURL); n != services+1 {
			return fmt.Errorf("zone-2 has a VIP from the global for %d of %d services", n, services+1)
		}
		return nil
	})
	// The zone-1 → global hop: what zone-1 sent; the global → zone-2 hop:
	// what zone-2 received.
	for _, hop := range []struct {
		name string
		z    *process
		sent bool
	}{{"zone-1 → global", z1, true}, {"global → zone-2", z2, false}} {
		after := kdsStats(t, hop.z.apiURL)
		var bytes uint64
		for typ, s := range after {
			was := before[hop.z.apiURL][typ]
			if s.SentBytes < was.SentBytes || s.ReceivedBytes < was.ReceivedBytes {
				t.Fatalf("%s reconnected to the global while the new service was synced: its counts started again", hop.z.apiURL)
			}
			if hop.sent {
				bytes += s.SentBytes - was.SentBytes
			} else {
				bytes += s.ReceivedBytes - was.ReceivedBytes
			}
		}
		t.Logf("one new service among %d cost the hop %s %d bytes of pushes", services, hop.name, bytes)
		if bytes == 0 || bytes > maxNewServiceBytes {
			t.Errorf("one new service cost the hop %s %d bytes of pushes, want some and at most %d", hop.name, bytes, maxNewServiceBytes)
		}
	}
}

// registerServices registers n Dataplanes in the zone at apiURL, from the
// first-th on, each with a service of its own, ten at a time.
func registerServices(t *testing.T, apiURL string, first, n int) {
	t.Helper()
	var next atomic.Int64
	next.Store(int64(first))
	var failed atomic.Value
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10}, Timeout: 30 * time.Second}
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= first+n || failed.Load() != nil {
					return
				}
				body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":"svc-%05d","networking":{"address":"10.8.%d.%d","inbound":[{"port":8080,"tags":{"atoll.io/service":"svc-%05d"}}]}}`,
					i, i/250, i%250+1, i)
				req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/meshes/default/dataplanes/svc-%05d", apiURL, i), bytes.NewReader([]byte(body)))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					failed.Store(fmt.Sprintf("PUT svc-%05d: %s %s", i, resp.Status, msg))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(err)
	}
}

// confirmedVIPs is how many services the zone at apiURL has a VIP for that
// the global assigned (not the zone's own proposal).
func confirmedVIPs(t *testing.T, apiURL string) int {
	t.Helper()
	status, body := call(t, "GET", apiURL+"/meshes/default/vips", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s/meshes/default/vips: %d %s", apiURL, status, body)
	}
	var l struct {
		Items []struct {
			VIP      string `json:"vip"`
			Proposed bool   `json:"proposed"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("GET %s/meshes/default/vips: %v", apiURL, err)
	}
	n := 0
	for _, it := range l.Items {
		if it.VIP != "" && !it.Proposed {
			n++
		}
	}
	return n
}

// kdsStats is the zone's count of its KDS session's traffic, by type.
func kdsStats(t *testing.T, apiURL string) map[string]kds.TypeStats {
	t.Helper()
	status, body := call(t, "GET", apiURL+"/zone", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s/zone: %d %s", apiURL, status, body)
	}
	var st struct {
		Connected bool                     `json:"connected"`
		Stats     map[string]kds.TypeStats `json:"stats"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("GET %s/zone: %v", apiURL, err)
	}
	if !st.Connected {
		t.Fatalf("%s is not connected to the global: %s", apiURL, body)
	}
	return st.Stats
}
