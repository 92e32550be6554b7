package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// syntheticZone is a zone without a store: its Dataplanes live in a map,
// so a benchmark can put 5,000 in each of ten zones in seconds.
type syntheticZone struct {
	mu  sync.Mutex
	dps map[string]*v1alpha1.WireResource
}

func (z *syntheticZone) Desired(_ context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if t == resource.DataplaneType {
		return maps.Clone(z.dps), nil
	}
	return map[string]*v1alpha1.WireResource{}, nil
}

func (z *syntheticZone) Held(context.Context, resource.Type) (map[string]string, error) {
	return map[string]string{}, nil
}

func (z *syntheticZone) Apply(context.Context, resource.Type, []*v1alpha1.WireResource, []string) (map[string]string, error) {
	return nil, nil
}

func (z *syntheticZone) set(tb testing.TB, name string, port uint32) {
	w, err := kds.ToWire(storetest.Dataplane("default", name, port), name)
	if err != nil {
		tb.Fatal(err)
	}
	z.mu.Lock()
	z.dps[kds.WireKey("default", name)] = w
	z.mu.Unlock()
}

func zoneDataplanes(url, zone string) int {
	resp, err := client.Get(url + "/zones/" + zone)
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

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkGlobal50k syncs 50,000 Dataplanes from ten zones into one global
// and reports the global's heap per synced Dataplane (embedded etcd
// included) and how many etcd transactions one Dataplane change costs.
func BenchmarkGlobal50k(b *testing.B) {
	const zones, perZone = 10, 5000
	g := global.Default()
	g.APIAddr, g.KDSAddr = freeAddr(b), freeAddr(b)
	g.DataDir = filepath.Join(b.TempDir(), "global")
	g.Etcd.ClientAddr, g.Etcd.PeerAddr = freeAddr(b), "127.0.0.1:0"
	g.KDS.Insecure = true
	startGlobal(b, g)
	url := "http://" + g.APIAddr
	base := heapInUse()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	synthetic := make([]*syntheticZone, zones)
	clients := make([]*kds.Client, zones)
	for i := range zones {
		z := &syntheticZone{dps: map[string]*v1alpha1.WireResource{}}
		for j := range perZone {
			z.set(b, fmt.Sprintf("dp-%d", j), uint32(1+j%60000))
		}
		synthetic[i] = z
		token := zoneToken(b, url, fmt.Sprintf("zone-%d", i+1))
		clients[i] = kds.NewClient(kds.ClientConfig{
			Address: g.KDSAddr, Zone: fmt.Sprintf("zone-%d", i+1),
			Token: func() (string, error) { return token, nil },
			Log:   slogDiscard(),
		}, z)
		wg.Add(1)
		go func() { defer wg.Done(); clients[i].Run(ctx) }()
	}
	start := time.Now()
	for i := range zones {
		for zoneDataplanes(url, fmt.Sprintf("zone-%d", i+1)) != perZone {
			if time.Since(start) > 5*time.Minute {
				b.Fatal("the global never got every Dataplane")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	synced := time.Since(start)
	perDP := float64(heapInUse()-base) / (zones * perZone)

	// Count etcd transactions that touch Dataplanes while one zone
	// changes one Dataplane at a time: every etcd write transaction has
	// its own revision.
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + g.Etcd.ClientAddr}, Logger: zap.NewNop()})
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
		ch := etcd.Watch(wctx, g.Etcd.Prefix+"resources/Dataplane/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
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
		synthetic[0].set(b, "dp-0", port)
		clients[0].Changed(resource.DataplaneType)
		changes++
		for {
			status, body := get(url + "/meshes/default/dataplanes/dp-0.zone-1")
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

	b.ReportMetric(perDP/1024, "heap-KiB/dataplane")
	b.ReportMetric(txns, "etcd-txns/change")
	b.ReportMetric(synced.Seconds(), "sync-50k-s")
}
