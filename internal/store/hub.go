package store

import (
	"context"
	"sync"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// watchBuffer is how many events a watcher may lag behind before its watch
// is ended (and it must List and Watch again).
const watchBuffer = 4096

// Hub fans events out to in-process watchers. Backends without a native
// watch (memory, bolt) publish to it after each committed write.
type Hub struct {
	mu       sync.Mutex
	watchers map[resource.Type]map[*hubWatcher]struct{}
}

type hubWatcher struct {
	ch     chan Event
	closed bool
}

// Watch registers a watcher for type t until ctx ends.
func (h *Hub) Watch(ctx context.Context, t resource.Type) <-chan Event {
	w := &hubWatcher{ch: make(chan Event, watchBuffer)}
	h.mu.Lock()
	if h.watchers == nil {
		h.watchers = map[resource.Type]map[*hubWatcher]struct{}{}
	}
	if h.watchers[t] == nil {
		h.watchers[t] = map[*hubWatcher]struct{}{}
	}
	h.watchers[t][w] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.remove(t, w)
	}()
	return w.ch
}

// Publish sends events to the watchers of their types. A watcher whose
// buffer is full is dropped: its channel closes, telling it to resync.
// Callers must publish in commit order.
func (h *Hub) Publish(events ...Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range events {
		for w := range h.watchers[e.Resource.Meta.Type] {
			select {
			case w.ch <- e:
			default:
				h.remove(e.Resource.Meta.Type, w)
			}
		}
	}
}

// Close ends every watch.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, ws := range h.watchers {
		for w := range ws {
			h.remove(t, w)
		}
	}
}

func (h *Hub) remove(t resource.Type, w *hubWatcher) {
	if w.closed {
		return
	}
	w.closed = true
	close(w.ch)
	delete(h.watchers[t], w)
}
