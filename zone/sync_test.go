package zone

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// slowIngressStore holds every write of a ZoneIngress until release is
// closed, as an API server under load does; entered receives each held
// write.
type slowIngressStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (s *slowIngressStore) Apply(ctx context.Context, ops []store.Op) error {
	if len(ops) == 0 || ops[0].Put == nil || ops[0].Put.Meta.Type != resource.ZoneIngressType {
		return s.Store.Apply(ctx, ops)
	}
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
		return s.Store.Apply(ctx, ops)
	case <-ctx.Done():
		return ctx.Err()
	}
}

type countingNotifier struct{ n atomic.Int64 }

func (c *countingNotifier) Changed(resource.Type) { c.n.Add(1) }

func (c *countingNotifier) ChangedKeys(resource.Type, ...string) { c.n.Add(1) }

// While a ZoneIngress write waits on a slow store, the index keeps taking
// Dataplane events (so KDS sends them on), and the ZoneIngress written once
// the store answers counts every instance.
func TestIndexKeepsUpWhileTheIngressWriteWaits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mem := memstore.New()
	defer mem.Close()
	idx := newLocalIndex()
	ingress := &ingressWriter{store: mem, zone: "zone-1", cfg: Ingress{Address: "10.0.0.1", Port: 10001}}
	if err := loadLocal(ctx, mem, idx, ingress); err != nil {
		t.Fatal(err)
	}
	slow := &slowIngressStore{Store: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	ingress.store = slow
	notify := &countingNotifier{}
	done := make(chan error, 1)
	go func() {
		done <- watchLocal(ctx, mem, ingress, idx, notify, time.Millisecond, slog.New(slog.DiscardHandler))
	}()

	const n = 50
	for i := range n {
		if _, err := mem.Create(ctx, localDP(fmt.Sprintf("dp-%d", i), 8080, true, "web")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no ZoneIngress write was attempted")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(idx.desired()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("the index holds %d of %d Dataplanes while a ZoneIngress write waits: it must not wait with it", len(idx.desired()), n)
		}
		time.Sleep(time.Millisecond)
	}

	close(slow.release)
	deadline = time.Now().Add(10 * time.Second)
	for {
		zi, err := mem.Get(ctx, resource.Key{Type: resource.ZoneIngressType, Name: resource.ZoneServiceName("zone-1", "default", map[string]string{resource.ServiceTag: "web"}, 8080)})
		if err == nil {
			if av := zi.Spec.(*v1alpha1.ZoneIngress).GetAvailableServices(); len(av) == 1 && av[0].GetInstances() == n {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored record of web never counted %d instances: %v %v", n, zi, err)
		}
		time.Sleep(time.Millisecond)
	}
	if notify.n.Load() == 0 {
		t.Error("KDS was never told of a change")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("watchLocal: %v", err)
	}
}
