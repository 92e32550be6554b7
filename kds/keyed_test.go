package kds_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

// keyedEndpoint is a fakeEndpoint that computes resources by key, and
// counts how often each way of reading is used. With whole set, it cannot
// compute by key (kds.ErrFullCompare).
type keyedEndpoint struct {
	*fakeEndpoint
	whole               bool
	desiredCalls, keyed atomic.Int64
	keysAsked           atomic.Int64
}

var _ kds.KeyedEndpoint = (*keyedEndpoint)(nil)

func (e *keyedEndpoint) Desired(ctx context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	e.desiredCalls.Add(1)
	return e.fakeEndpoint.Desired(ctx, t)
}

func (e *keyedEndpoint) DesiredKeys(_ context.Context, t resource.Type, keys []string) (map[string]*v1alpha1.WireResource, error) {
	if e.whole {
		return nil, kds.ErrFullCompare
	}
	e.keyed.Add(1)
	e.keysAsked.Add(int64(len(keys)))
	all := e.wanted(t)
	out := map[string]*v1alpha1.WireResource{}
	for _, k := range keys {
		if w, ok := all[k]; ok {
			out[k] = w
		}
	}
	return out, nil
}

// A change told by key is pushed by comparing that key only: the endpoint
// is never read whole after the first sync, and what is pushed is exactly
// the change (an update, an addition, a removal; a key told of that did
// not change costs nothing).
func TestAChangeToldByKeyIsComparedAlone(t *testing.T) {
	zoneEp := &keyedEndpoint{fakeEndpoint: newEndpoint()}
	globalEp := newEndpoint()
	const initial = 1000
	for i := range initial {
		zoneEp.want(resource.DataplaneType, dataplane(t, fmt.Sprintf("dp-%04d", i), 8080))
	}
	z, g := pipe(64)
	t.Cleanup(z.Close)
	zone := start(t, z, zoneEp, zoneConfig())
	start(t, g, globalEp, globalConfig())
	eventually(t, func() error {
		if st := zone.Stats.Snapshot().Types[resource.DataplaneType]; st.Acked != initial {
			return fmt.Errorf("initial sync: %d of %d acknowledged", st.Acked, initial)
		}
		return nil
	})
	reads := zoneEp.desiredCalls.Load()

	zoneEp.want(resource.DataplaneType, dataplane(t, "dp-0001", 9090), dataplane(t, "dp-new", 8080))
	zoneEp.unwant(resource.DataplaneType, "default/dp-0002")
	zone.ChangedKeys(resource.DataplaneType, "default/dp-0001", "default/dp-new", "default/dp-0002", "default/dp-0003")
	eventually(t, func() error {
		return sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType))
	})
	eventually(t, func() error {
		if st := zone.Stats.Snapshot().Types[resource.DataplaneType]; st.Acked != initial+3 {
			return fmt.Errorf("%d acknowledged, want %d", st.Acked, initial+3)
		}
		return nil
	})
	if got := zone.Stats.Snapshot().Types[resource.DataplaneType].Sent; got != initial+3 {
		t.Errorf("sent %d resources after the change, want 3 (an update, an addition, a removal)", got-initial)
	}
	if n := zoneEp.desiredCalls.Load(); n != reads {
		t.Errorf("the endpoint was read whole %d times for a change told by key", n-reads)
	}
	if zoneEp.keyed.Load() == 0 || zoneEp.keysAsked.Load() > 4 {
		t.Errorf("DesiredKeys was called %d times for %d keys, want once or more for at most the 4 told", zoneEp.keyed.Load(), zoneEp.keysAsked.Load())
	}

	// Changed still compares everything: a change made without telling
	// its key is found.
	zoneEp.want(resource.DataplaneType, dataplane(t, "dp-0500", 9191))
	zone.Changed(resource.DataplaneType)
	eventually(t, func() error {
		return sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType))
	})
	if zoneEp.desiredCalls.Load() == reads {
		t.Error("Changed did not read the endpoint whole")
	}
}

// Whatever the mix of changes told by key, told whole, and too many keys at
// once, and whether the endpoint can compute by key, the peer ends holding
// exactly what this end sends.
func TestChangesToldByKeyConverge(t *testing.T) {
	for _, whole := range []bool{false, true} {
		t.Run(fmt.Sprintf("endpoint-whole-%v", whole), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(t.Name()))))
			zoneEp := &keyedEndpoint{fakeEndpoint: newEndpoint(), whole: whole}
			globalEp := newEndpoint()
			z, g := pipe(64)
			t.Cleanup(z.Close)
			zone := start(t, z, zoneEp, zoneConfig())
			start(t, g, globalEp, globalConfig())
			for round := range 200 {
				var keys []string
				for range 1 + rng.IntN(5) {
					name := fmt.Sprintf("dp-%03d", rng.IntN(300))
					key := "default/" + name
					if rng.IntN(3) == 0 {
						zoneEp.unwant(resource.DataplaneType, key)
					} else {
						zoneEp.want(resource.DataplaneType, dataplane(t, name, uint32(8000+rng.IntN(50))))
					}
					keys = append(keys, key)
				}
				switch {
				// The last rounds are told by key only: what they change is
				// found only that way.
				case round < 150 && round%50 == 49: // past the gathering bound: compared whole
					many := make([]string, 5000)
					for i := range many {
						many[i] = fmt.Sprintf("default/none-%d", i)
					}
					zone.ChangedKeys(resource.DataplaneType, append(many, keys...)...)
				case round < 150 && round%17 == 0:
					zone.Changed(resource.DataplaneType)
				default:
					zone.ChangedKeys(resource.DataplaneType, keys...)
				}
			}
			eventually(t, func() error {
				return sameResources(globalEp.holding(resource.DataplaneType), zoneEp.wanted(resource.DataplaneType))
			})
		})
	}
}
