package etcdstore_test

import (
	"context"
	"testing"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
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
