package crdstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// The API server ends watch requests on its own; the store resumes them
// from the last version seen, so the watcher misses nothing and sees
// nothing twice.
func watchResumesWhenTheServerEndsIt(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "resume"})
	crdstore.SetWatchTimeout(s, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, resource.DataplaneType)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	ticker := time.NewTicker(700 * time.Millisecond) // across several 1s watch requests
	defer ticker.Stop()
	for i := range n {
		<-ticker.C
		if _, err := s.Create(ctx, storetest.Dataplane("default", fmt.Sprintf("dp-%d", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("watch closed after %d events: it should have been resumed", i)
			}
			if want := fmt.Sprintf("dp-%d", i); e.Kind != store.Put || e.Resource.Meta.Name != want {
				t.Fatalf("event %d: %s %s, want put %s", i, e.Kind, e.Resource.Meta.Name, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d did not come", i)
		}
	}
	select {
	case e, ok := <-ch:
		if ok {
			t.Fatalf("an extra event: %s %s", e.Kind, e.Resource.Meta.Name)
		}
		t.Fatal("watch closed: it should have been resumed")
	case <-time.After(1500 * time.Millisecond):
	}
}

// A watcher that falls behind has its channel closed, so it lists again,
// instead of holding the watch (and the API server's buffers) up.
func watchClosesWhenTheWatcherFallsBehind(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "behind"})
	crdstore.SetWatchBuffer(s, 2)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Watch(wctx, resource.DataplaneType)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Create(ctx, storetest.Dataplane("default", fmt.Sprintf("dp-%d", i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(10 * time.Second)
	for got := 0; ; got++ {
		select {
		case _, ok := <-ch:
			if !ok {
				if got > 2 {
					t.Fatalf("%d events before the close, want at most the buffer's 2", got)
				}
				return
			}
		case <-deadline:
			t.Fatalf("watch not closed after %d events, though the watcher fell behind", got)
		}
	}
}
