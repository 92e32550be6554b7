package zone

import (
	"context"
	"log/slog"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
	"github.com/atoll-mesh/atoll/kds"
)

// changeNotifier is told of local changes that the global should see.
type changeNotifier interface {
	Changed(t resource.Type)
	// ChangedKeys: only the resources of t with these wire keys changed.
	ChangedKeys(t resource.Type, keys ...string)
}

// ingressRetry is how long the ZoneIngress writer waits before writing
// again after a failed write.
const ingressRetry = time.Second

// watchLocal keeps the zone's ZoneIngress in step with its Dataplanes and
// tells notify (the KDS client, or nothing) what changed. The index takes
// every event as it comes; the ZoneIngress is written by its own goroutine
// (writeIngress), because a write waits on the store — in Kubernetes mode
// on the API server — and the global must not hear of new Dataplanes only
// as fast as the ZoneIngress can be rewritten.
func watchLocal(ctx context.Context, st store.Store, ingress *ingressWriter, idx *localIndex, notify changeNotifier, debounce time.Duration, log *slog.Logger) error {
	kick := make(chan struct{}, 1)
	recompute := func() {
		select {
		case kick <- struct{}{}:
		default: // a recompute is already due; it will see this change
		}
	}
	ictx, stop := context.WithCancel(ctx)
	written := make(chan struct{})
	go func() {
		defer close(written)
		writeIngress(ictx, ingress, idx, kick, debounce, log)
	}()
	defer func() { stop(); <-written }()

	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		dps, err := st.Watch(wctx, resource.DataplaneType)
		if err != nil {
			cancel()
			return err
		}
		// Watch, then list: events after the list only repeat or advance it.
		all, err := st.List(ctx, resource.DataplaneType, "")
		if err != nil {
			cancel()
			return err
		}
		if err := idx.reset(all); err != nil {
			cancel()
			return err
		}
		recompute()
		// Catch up on anything missed while no watch ran.
		notify.Changed(resource.DataplaneType)
		notify.Changed(resource.ZoneIngressType)
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case e, ok := <-dps:
				if !ok {
					open = false
					break
				}
				counts, err := idx.apply(e)
				if err != nil {
					log.Warn("indexing a Dataplane failed", "name", e.Resource.Meta.Name, "error", err)
				}
				// Only this Dataplane: the session compares it alone.
				notify.ChangedKeys(resource.DataplaneType, kds.WireKey(e.Resource.Meta.Mesh, e.Resource.Meta.Name))
				if counts {
					recompute()
				}
			}
		}
		cancel()
	}
	return nil
}

// writeIngress writes the ZoneIngress computed from idx when kicked, until
// ctx ends: a kick after a quiet interval is acted on at once, kicks in a
// burst are gathered for up to debounce, and a failed write is tried again
// after ingressRetry. It is the only writer of ingress while it runs.
func writeIngress(ctx context.Context, ingress *ingressWriter, idx *localIndex, kick <-chan struct{}, debounce time.Duration, log *slog.Logger) {
	throttled := throttle.New(debounce)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	write := func() {
		retry.Stop()
		started := time.Now()
		_, err := ingress.update(ctx, idx)
		// Writes are paced by what they cost: the next waits at least as
		// long as this one took, so a store that answers slowly (the
		// Kubernetes API server, with one request per record) spends at
		// most half its time on them, while changes gather meanwhile.
		throttled.SetInterval(max(debounce, time.Since(started)))
		throttled.Acted()
		if err != nil && ctx.Err() == nil {
			log.Warn("updating the zone ingress failed; retrying", "in", ingressRetry, "error", err)
			retry.Reset(ingressRetry)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			if throttled.Event() {
				write()
			}
		case <-throttled.C():
			write()
		case <-retry.C:
			write()
		}
	}
}
