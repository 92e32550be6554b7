package etcdstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++ // each subtest gets its own prefix: an empty store
		return etcdstore.New(client, "/test/"+string(rune('a'+n))+"/")
	})
}

func TestTwoStoresOnOneEtcdSeeEachOther(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	a := etcdstore.New(client, "")
	b := etcdstore.New(client, "")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.Watch(wctx, "Dataplane")
	if err != nil {
		t.Fatal(err)
	}
	created, err := a.Create(ctx, storetest.Dataplane("default", "dp-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	e := <-ch
	if e.Resource.Meta.Name != "dp-1" || e.Resource.Meta.Version != created.Meta.Version {
		t.Fatalf("b saw %s %q, want dp-1 at %q", e.Kind, e.Resource.Meta.Name, created.Meta.Version)
	}
	stale := storetest.Dataplane("default", "dp-1", 2)
	stale.Meta.Version = created.Meta.Version
	if _, err := b.Update(ctx, stale); err != nil {
		t.Fatal(err)
	}
	stale.Meta.Version = created.Meta.Version
	if _, err := a.Update(ctx, stale); !store.IsConflict(err) {
		t.Fatalf("a's stale update: got %v, want conflict", err)
	}
}

func TestDataSurvivesEtcdRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, client := etcdtest.Start(t, dir)
	created, err := etcdstore.New(client, "").Create(ctx, storetest.Dataplane("default", "dp-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	srv.Close()

	_, client = etcdtest.Start(t, dir)
	got, err := etcdstore.New(client, "").Get(ctx, created.Key())
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.Meta.Version != created.Meta.Version {
		t.Errorf("version %q after restart, want %q", got.Meta.Version, created.Meta.Version)
	}
}

// A fence keeps a replaced writer from writing: once a newer fence of the
// name is taken, every transaction of the older one is refused by etcd and
// writes nothing, also in a batch spanning several transactions; fences of
// other names are not affected; a dropped fence ends its holder.
func TestAReplacedFenceWritesNothing(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "")
	other := etcdstore.New(client, "") // another process on the same etcd
	old, err := st.Fence(ctx, "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	put := func(names ...string) []store.Op {
		var ops []store.Op
		for i, n := range names {
			ops = append(ops, store.Op{Put: storetest.Dataplane("default", n, uint32(1000+i))})
		}
		return ops
	}
	if err := old.Apply(ctx, put("dp-1")); err != nil {
		t.Fatalf("the only fence of zone-1 writes: %v", err)
	}
	elsewhere, err := st.Fence(ctx, "zone-2")
	if err != nil {
		t.Fatal(err)
	}
	newer, err := other.Fence(ctx, "zone-1")
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, store.MaxBatch*2+1)
	for i := range many {
		many[i] = fmt.Sprintf("late-%03d", i)
	}
	if err := old.Apply(ctx, put(many...)); !store.IsFenced(err) {
		t.Fatalf("the replaced fence's write: got %v, want a fenced error", err)
	}
	if err := old.Apply(ctx, []store.Op{{Delete: resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "dp-1"}}}); !store.IsFenced(err) {
		t.Fatalf("the replaced fence's delete: got %v, want a fenced error", err)
	}
	if err := newer.Apply(ctx, put("dp-2")); err != nil {
		t.Fatalf("the newer fence writes: %v", err)
	}
	if err := elsewhere.Apply(ctx, put("dp-3")); err != nil {
		t.Fatalf("a fence of another name writes: %v", err)
	}
	got, err := st.List(ctx, resource.DataplaneType, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Meta.Name)
	}
	if want := []string{"dp-1", "dp-2", "dp-3"}; !slices.Equal(names, want) {
		t.Fatalf("stored %v, want %v: nothing of the replaced fence's writes", names, want)
	}
	if err := st.DropFence(ctx, "zone-1"); err != nil {
		t.Fatal(err)
	}
	if err := newer.Apply(ctx, put("dp-4")); !store.IsFenced(err) {
		t.Fatalf("a write after the fence was dropped: got %v, want a fenced error", err)
	}
}
