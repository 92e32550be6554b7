package store

import (
	"context"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Notify signals ch on every change of the given types, and each time a
// watch (re)starts, until ctx ends. It never blocks on ch: a signal already
// pending covers later changes. A watch that fails or ends is restarted
// after a second. It runs one goroutine per type, ended by ctx.
func Notify(ctx context.Context, w Watcher, ch chan<- struct{}, types ...resource.Type) {
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for _, t := range types {
		go func() {
			for ctx.Err() == nil {
				events, err := w.Watch(ctx, t)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					continue
				}
				signal() // anything missed while no watch ran
				for range events {
					signal()
				}
			}
		}()
	}
}
