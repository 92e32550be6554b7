package zone

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
)

// changeNotifier is told of local changes that the global should see.
type changeNotifier interface {
	Changed(t resource.Type)
}

// watchLocal keeps the zone's ZoneIngress in step with its Dataplanes and
// tells notify (the KDS client, or nothing) what changed. A change after a
// quiet interval is handled at once; bursts are gathered for up to debounce.
func watchLocal(ctx context.Context, st store.Store, ingress *ingressWriter, idx *localIndex, notify changeNotifier, debounce time.Duration, log *slog.Logger) error {
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
		if _, err := ingress.update(ctx, idx); err != nil {
			cancel()
			return fmt.Errorf("computing the zone ingress: %w", err)
		}
		// Catch up on anything missed while no watch ran.
		notify.Changed(resource.DataplaneType)
		notify.Changed(resource.ZoneIngressType)
		throttled := throttle.New(debounce)
		recompute := func() {
			throttled.Acted()
			if _, err := ingress.update(ctx, idx); err != nil && ctx.Err() == nil {
				log.Warn("updating the zone ingress failed; it is retried on the next change", "error", err)
			}
		}
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
				notify.Changed(resource.DataplaneType)
				if counts && throttled.Event() {
					recompute()
				}
			case <-throttled.C():
				recompute()
			}
		}
		cancel()
	}
	return nil
}
