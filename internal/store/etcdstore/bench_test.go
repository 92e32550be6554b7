package etcdstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// BenchmarkWriteBatching writes the same resources to a real (embedded)
// etcd twice per iteration: one Create per resource (the baseline), then
// Apply in transactions of store.MaxBatch. It reports microseconds per
// resource for both and the speed-up of batching.
func BenchmarkWriteBatching(b *testing.B) {
	const n = 512
	ctx := context.Background()
	_, client := etcdtest.Start(b, "")
	var oneByOne, batched time.Duration
	for i := 0; b.Loop(); i++ {
		s := etcdstore.New(client, fmt.Sprintf("/bench/%d/", i))
		start := time.Now()
		for j := range n {
			if _, err := s.Create(ctx, storetest.Dataplane("default", fmt.Sprintf("dp-%d", j), 8080)); err != nil {
				b.Fatal(err)
			}
		}
		oneByOne += time.Since(start)

		ops := make([]store.Op, n)
		for j := range ops {
			ops[j] = store.Op{Put: storetest.Dataplane("other", fmt.Sprintf("dp-%d", j), 8080)}
		}
		start = time.Now()
		if err := s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
		batched += time.Since(start)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*n) }
	b.ReportMetric(per(oneByOne), "µs/resource-one-by-one")
	b.ReportMetric(per(batched), "µs/resource-batched")
	b.ReportMetric(float64(oneByOne)/float64(batched), "x-batching-speedup")
}

// BenchmarkList lists 5,000 Dataplanes (paged at one revision).
func BenchmarkList(b *testing.B) {
	const n = 5000
	ctx := context.Background()
	_, client := etcdtest.Start(b, "")
	s := etcdstore.New(client, "")
	ops := make([]store.Op, n)
	for j := range ops {
		ops[j] = store.Op{Put: storetest.Dataplane("default", fmt.Sprintf("dp-%05d", j), 8080)}
	}
	if err := s.Apply(ctx, ops); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		items, err := s.List(ctx, "Dataplane", "default")
		if err != nil || len(items) != n {
			b.Fatalf("listed %d, %v", len(items), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/resource")
}
