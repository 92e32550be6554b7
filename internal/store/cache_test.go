package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// droppable ends its watches on demand, as a backend does with a watcher
// that cannot keep up.
type droppable struct {
	*memstore.Store
	mu      sync.Mutex
	cancels []context.CancelFunc
}

func (d *droppable) Watch(ctx context.Context, t resource.Type) (<-chan store.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.cancels = append(d.cancels, cancel)
	d.mu.Unlock()
	return d.Store.Watch(ctx, t)
}

func (d *droppable) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cancels {
		c()
	}
	d.cancels = nil
}

func zoneRes(name string, enabled bool) *resource.Resource {
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneType, Name: name},
		Spec: &v1alpha1.Zone{Enabled: &enabled},
	}
}

// waitFor polls cond: the cache follows the store asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func names(rs []*resource.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Meta.Name)
	}
	return out
}

func TestCacheFollowsTheStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &droppable{Store: memstore.New()}
	if _, err := src.Create(ctx, zoneRes("zone-b", true)); err != nil {
		t.Fatal(err)
	}
	c := store.NewCache(src, resource.ZoneType)

	// A subscriber is told of a change once the cache holds it: each
	// notice comes with a new generation.
	var mu sync.Mutex
	var stale []uint64
	told, lastGen := 0, uint64(0)
	c.Subscribe(func(ty resource.Type) {
		if ty != resource.ZoneType {
			t.Errorf("told of %s, which is not cached", ty)
		}
		mu.Lock()
		defer mu.Unlock()
		told++
		g := c.Generation(ty)
		if g <= lastGen {
			stale = append(stale, g)
		}
		lastGen = g
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(c.List(resource.ZoneType, "")); len(got) != 1 || got[0] != "zone-b" {
		t.Fatalf("after Start the cache holds %v, want [zone-b]", got)
	}
	g0 := c.Generation(resource.ZoneType)

	if _, err := src.Create(ctx, zoneRes("zone-a", true)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "zone-a", func() bool { return len(c.List(resource.ZoneType, "")) == 2 })
	if got := names(c.List(resource.ZoneType, "")); got[0] != "zone-a" || got[1] != "zone-b" {
		t.Fatalf("List is %v, want sorted [zone-a zone-b]", got)
	}
	if c.Generation(resource.ZoneType) == g0 {
		t.Fatal("the generation did not change with the contents")
	}

	cur, _ := src.Get(ctx, resource.Key{Type: resource.ZoneType, Name: "zone-a"})
	upd := zoneRes("zone-a", false)
	upd.Meta.Version = cur.Meta.Version
	if _, err := src.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "zone-a disabled", func() bool {
		r, err := c.Get(resource.Key{Type: resource.ZoneType, Name: "zone-a"})
		return err == nil && !r.Spec.(*v1alpha1.Zone).GetEnabled()
	})

	// Changes made while no watch runs arrive with the reload.
	src.drop()
	if err := src.Delete(ctx, resource.Key{Type: resource.ZoneType, Name: "zone-b"}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "zone-b removed", func() bool { return len(c.List(resource.ZoneType, "")) == 1 })
	if _, err := c.Get(resource.Key{Type: resource.ZoneType, Name: "zone-b"}); !store.IsNotFound(err) {
		t.Fatalf("Get of a deleted resource: %v, want not found", err)
	}
	if _, err := src.Create(ctx, zoneRes("zone-c", true)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "zone-c after the reload", func() bool { return len(c.List(resource.ZoneType, "")) == 2 })

	mu.Lock()
	defer mu.Unlock()
	if told < 4 {
		t.Errorf("subscriber told %d times, want at least 4", told)
	}
	if len(stale) > 0 {
		t.Errorf("a subscriber was told of a change the cache did not hold yet: generations %v", stale)
	}
}

func TestCacheListFiltersByMesh(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := memstore.New()
	for _, m := range []string{"default", "other"} {
		r := &resource.Resource{
			Meta: resource.Meta{Type: resource.VIPTableType, Mesh: m, Name: resource.VIPTableName},
			Spec: &v1alpha1.VIPTable{},
		}
		if _, err := src.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	c := store.NewCache(src, resource.VIPTableType)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.List(resource.VIPTableType, "other"); len(got) != 1 || got[0].Meta.Mesh != "other" {
		t.Fatalf("List of mesh other: %v", got)
	}
	if got := c.List(resource.VIPTableType, ""); len(got) != 2 || got[0].Meta.Mesh != "default" {
		t.Fatalf("List of every mesh: %v", got)
	}
	if _, err := c.Get(resource.Key{Type: resource.ZoneType, Name: "x"}); !store.IsNotFound(err) {
		t.Fatalf("Get of an uncached type: %v, want not found", err)
	}
}

// Keyed subscribers are told the key of each change, and nil after a
// reload, once the cache holds it.
func TestCacheTellsTheKeyOfAChange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &droppable{Store: memstore.New()}
	c := store.NewCache(src, resource.ZoneType)
	told := make(chan *resource.Key, 16)
	c.SubscribeKeys(func(ty resource.Type, key *resource.Key) {
		if ty != resource.ZoneType {
			t.Errorf("told of %s", ty)
		}
		if key != nil {
			if _, err := c.Get(*key); err != nil && !store.IsNotFound(err) {
				t.Errorf("told of %v before the cache held it: %v", key, err)
			}
		}
		told <- key
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	next := func() *resource.Key {
		select {
		case k := <-told:
			return k
		case <-time.After(10 * time.Second):
			t.Fatal("not told")
			return nil
		}
	}
	if k := next(); k != nil {
		t.Fatalf("the first load told %v, want nil", k)
	}
	if _, err := src.Create(ctx, zoneRes("zone-1", true)); err != nil {
		t.Fatal(err)
	}
	if k := next(); k == nil || *k != (resource.Key{Type: resource.ZoneType, Name: "zone-1"}) {
		t.Fatalf("creating zone-1 told %v", k)
	}
	if err := src.Delete(ctx, resource.Key{Type: resource.ZoneType, Name: "zone-1"}, ""); err != nil {
		t.Fatal(err)
	}
	if k := next(); k == nil || k.Name != "zone-1" {
		t.Fatalf("deleting zone-1 told %v", k)
	}
	src.drop()
	if k := next(); k != nil {
		t.Fatalf("a reload told %v, want nil", k)
	}
}
