package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Cache mirrors some types of a store in memory, kept current by watches.
// It is for the few, large resources that are read far more often than
// they change (each zone's ZoneIngress, the meshes' VIP tables, meshes and
// zones): readers get them without the backend decoding them again, and
// subscribers hear of a change only once the cache holds it, so what they
// read next is at least as new as what they were told of.
//
// What Get and List return is shared by every reader: treat it as
// read-only.
type Cache struct {
	src interface {
		Reader
		Watcher
	}
	types []resource.Type

	mu     sync.RWMutex
	items  map[resource.Type]map[resource.Key]*resource.Resource
	sorted map[resource.Type][]*resource.Resource // nil when a change made it stale
	gen    map[resource.Type]uint64

	subMu sync.Mutex
	subs  []func(resource.Type, *resource.Key)
}

// NewCache returns a cache of types in src. Start fills it.
func NewCache(src interface {
	Reader
	Watcher
}, types ...resource.Type) *Cache {
	c := &Cache{
		src: src, types: types,
		items:  map[resource.Type]map[resource.Key]*resource.Resource{},
		sorted: map[resource.Type][]*resource.Resource{},
		gen:    map[resource.Type]uint64{},
	}
	for _, t := range types {
		c.items[t] = map[resource.Key]*resource.Resource{}
	}
	return c
}

// Subscribe registers fn, called after every change the cache takes in
// (and after every reload) with the type that changed. fn runs on the
// cache's goroutine and must not block.
func (c *Cache) Subscribe(fn func(resource.Type)) {
	c.SubscribeKeys(func(t resource.Type, _ *resource.Key) { fn(t) })
}

// SubscribeKeys is Subscribe, also told the key of the resource that
// changed; nil after a reload, when any may have.
func (c *Cache) SubscribeKeys(fn func(resource.Type, *resource.Key)) {
	c.subMu.Lock()
	c.subs = append(c.subs, fn)
	c.subMu.Unlock()
}

// Signal sends on ch, without blocking, after every change of one of
// types: a pending signal covers later changes. For owners that gather
// changes and act on them from their own goroutine.
func (c *Cache) Signal(ch chan<- struct{}, types ...resource.Type) {
	c.Subscribe(func(t resource.Type) {
		if slices.Contains(types, t) {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
}

func (c *Cache) notify(t resource.Type, key *resource.Key) {
	c.subMu.Lock()
	subs := slices.Clone(c.subs)
	c.subMu.Unlock()
	for _, fn := range subs {
		fn(t, key)
	}
}

// Start loads every type and keeps them current until ctx ends. It
// returns once the cache holds what the store held, or the first error.
func (c *Cache) Start(ctx context.Context) error {
	for _, t := range c.types {
		reset := func(list []*resource.Resource) {
			fresh := make(map[resource.Key]*resource.Resource, len(list))
			for _, r := range list {
				fresh[r.Key()] = r
			}
			c.mu.Lock()
			c.items[t] = fresh
			c.sorted[t] = nil
			c.gen[t]++
			c.mu.Unlock()
			c.notify(t, nil)
		}
		apply := func(e Event) {
			key := e.Resource.Key()
			c.mu.Lock()
			if e.Kind == Deleted {
				delete(c.items[t], key)
			} else {
				c.items[t][key] = e.Resource
			}
			c.sorted[t] = nil
			c.gen[t]++
			c.mu.Unlock()
			c.notify(t, &key)
		}
		if err := Follow(ctx, c.src, t, reset, apply); err != nil {
			return err
		}
	}
	return nil
}

// Follow keeps a consumer of type t in step with src until ctx ends: reset
// gets the whole list, then apply every change, in order, from one
// goroutine. When the watch ends early (the backend dropped a slow
// watcher, or failed) it lists again and calls reset. It returns after the
// first reset, or with the first error.
func Follow(ctx context.Context, src interface {
	Reader
	Watcher
}, t resource.Type, reset func([]*resource.Resource), apply func(Event)) error {
	// Watch, then list: events after the list only repeat or advance it.
	load := func() (<-chan Event, error) {
		ch, err := src.Watch(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("following %s: %w", t, err)
		}
		list, err := src.List(ctx, t, "")
		if err != nil {
			return nil, fmt.Errorf("following %s: %w", t, err)
		}
		reset(list)
		return ch, nil
	}
	ch, err := load()
	if err != nil {
		return err
	}
	go func() {
		for {
			for e := range ch {
				apply(e)
			}
			for {
				if ctx.Err() != nil {
					return
				}
				var err error
				if ch, err = load(); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	return nil
}

// Get returns the cached resource at key, or an error satisfying
// IsNotFound. The type must be one the cache holds.
func (c *Cache) Get(key resource.Key) (*resource.Resource, error) {
	c.mu.RLock()
	r := c.items[key.Type][key]
	c.mu.RUnlock()
	if r == nil {
		return nil, NotFound(key)
	}
	return r, nil
}

// List returns the cached resources of t in mesh, or in every mesh when
// mesh is "", sorted by mesh then name like Reader.List.
func (c *Cache) List(t resource.Type, mesh string) []*resource.Resource {
	c.mu.RLock()
	all := c.sorted[t]
	c.mu.RUnlock()
	if all == nil {
		c.mu.Lock()
		if all = c.sorted[t]; all == nil {
			all = make([]*resource.Resource, 0, len(c.items[t]))
			for _, r := range c.items[t] {
				all = append(all, r)
			}
			slices.SortFunc(all, func(a, b *resource.Resource) int {
				return cmp.Or(cmp.Compare(a.Meta.Mesh, b.Meta.Mesh), cmp.Compare(a.Meta.Name, b.Meta.Name))
			})
			c.sorted[t] = all
		}
		c.mu.Unlock()
	}
	out := make([]*resource.Resource, 0, len(all))
	for _, r := range all {
		if mesh == "" || r.Meta.Mesh == mesh {
			out = append(out, r)
		}
	}
	return out
}

// Generation changes whenever what the cache holds of t changes, so
// readers can tell that something they derived from it is still current.
func (c *Cache) Generation(t resource.Type) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen[t]
}
