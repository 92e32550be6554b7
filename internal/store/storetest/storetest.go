// Package storetest is the conformance suite every store.Store must pass.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// Dataplane returns a valid Dataplane for tests.
func Dataplane(mesh, name string, port uint32) *resource.Resource {
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: mesh, Name: name},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
			Address: "10.0.0.1",
			Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
				Port: port, Tags: map[string]string{resource.ServiceTag: "backend"},
			}},
		}},
	}
}

func port(r *resource.Resource) uint32 {
	return r.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()[0].GetPort()
}

// Run runs the suite. newStore returns an empty store; the suite closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	fresh := func(t *testing.T) store.Store {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		return s
	}

	t.Run("create then get returns what was stored", func(t *testing.T) {
		s := fresh(t)
		in := Dataplane("default", "dp-1", 8080)
		in.Meta.Labels = map[string]string{resource.ZoneLabel: "zone-1"}
		created, err := s.Create(ctx, in)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if created.Meta.Version == "" || created.Meta.CreationTime.IsZero() || created.Meta.ModificationTime.IsZero() {
			t.Fatalf("Create returned meta without version or times: %+v", created.Meta)
		}
		got, err := s.Get(ctx, in.Key())
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.Meta.Version != created.Meta.Version {
			t.Errorf("version: got %q, created %q", got.Meta.Version, created.Meta.Version)
		}
		if got.Meta.Labels[resource.ZoneLabel] != "zone-1" {
			t.Errorf("labels lost: %v", got.Meta.Labels)
		}
		if !proto.Equal(got.Spec, in.Spec) {
			t.Errorf("spec: got %v, want %v", got.Spec, in.Spec)
		}
		if !got.Meta.CreationTime.Equal(created.Meta.CreationTime) {
			t.Errorf("creation time: got %v, want %v", got.Meta.CreationTime, created.Meta.CreationTime)
		}
	})

	t.Run("create of an existing key fails and keeps the first", func(t *testing.T) {
		s := fresh(t)
		if _, err := s.Create(ctx, Dataplane("default", "dp-1", 1)); err != nil {
			t.Fatal(err)
		}
		_, err := s.Create(ctx, Dataplane("default", "dp-1", 2))
		if !store.IsAlreadyExists(err) {
			t.Fatalf("second Create: got %v, want already exists", err)
		}
		got, _ := s.Get(ctx, resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "dp-1"})
		if port(got) != 1 {
			t.Errorf("stored port %d, want 1", port(got))
		}
	})

	t.Run("get of a missing key is not found", func(t *testing.T) {
		s := fresh(t)
		_, err := s.Get(ctx, resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "nope"})
		if !store.IsNotFound(err) {
			t.Fatalf("got %v, want not found", err)
		}
	})

	t.Run("update needs the current version", func(t *testing.T) {
		s := fresh(t)
		created, err := s.Create(ctx, Dataplane("default", "dp-1", 1))
		if err != nil {
			t.Fatal(err)
		}
		next := Dataplane("default", "dp-1", 2)
		next.Meta.Version = created.Meta.Version
		updated, err := s.Update(ctx, next)
		if err != nil {
			t.Fatalf("Update with current version: %v", err)
		}
		if updated.Meta.Version == created.Meta.Version {
			t.Errorf("version did not change on update: %q", updated.Meta.Version)
		}
		if !updated.Meta.CreationTime.Equal(created.Meta.CreationTime) {
			t.Errorf("creation time changed on update: %v -> %v", created.Meta.CreationTime, updated.Meta.CreationTime)
		}
		stale := Dataplane("default", "dp-1", 3)
		stale.Meta.Version = created.Meta.Version
		if _, err := s.Update(ctx, stale); !store.IsConflict(err) {
			t.Fatalf("Update with stale version: got %v, want conflict", err)
		}
		got, _ := s.Get(ctx, next.Key())
		if port(got) != 2 || got.Meta.Version != updated.Meta.Version {
			t.Errorf("after a refused update: port %d version %q, want 2 %q", port(got), got.Meta.Version, updated.Meta.Version)
		}
	})

	t.Run("update of a missing key is not found", func(t *testing.T) {
		s := fresh(t)
		r := Dataplane("default", "nope", 1)
		r.Meta.Version = "1"
		if _, err := s.Update(ctx, r); !store.IsNotFound(err) {
			t.Fatalf("got %v, want not found", err)
		}
	})

	t.Run("delete honours versions", func(t *testing.T) {
		s := fresh(t)
		created, err := s.Create(ctx, Dataplane("default", "dp-1", 1))
		if err != nil {
			t.Fatal(err)
		}
		key := created.Key()
		// A version this store never issued for the key is a conflict.
		if err := s.Delete(ctx, key, "999999999"); !store.IsConflict(err) {
			t.Fatalf("Delete with wrong version: got %v, want conflict", err)
		}
		if _, err := s.Get(ctx, key); err != nil {
			t.Fatalf("resource gone after a refused delete: %v", err)
		}
		if err := s.Delete(ctx, key, created.Meta.Version); err != nil {
			t.Fatalf("Delete with current version: %v", err)
		}
		if _, err := s.Get(ctx, key); !store.IsNotFound(err) {
			t.Fatalf("Get after delete: got %v, want not found", err)
		}
		if err := s.Delete(ctx, key, ""); !store.IsNotFound(err) {
			t.Fatalf("Delete of missing: got %v, want not found", err)
		}
	})

	t.Run("list filters by type and mesh and sorts", func(t *testing.T) {
		s := fresh(t)
		for _, r := range []*resource.Resource{
			Dataplane("mesh-b", "dp-2", 1),
			Dataplane("mesh-a", "dp-3", 1),
			Dataplane("mesh-a", "dp-1", 1),
			Dataplane("mesh-ab", "dp-0", 1), // shares a prefix with mesh-a
			{Meta: resource.Meta{Type: resource.MeshType, Name: "mesh-a"}, Spec: &v1alpha1.Mesh{}},
		} {
			if _, err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		names := func(rs []*resource.Resource) []string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Meta.Mesh+"/"+r.Meta.Name)
			}
			return out
		}
		all, err := s.List(ctx, resource.DataplaneType, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(names(all)), "[mesh-a/dp-1 mesh-a/dp-3 mesh-ab/dp-0 mesh-b/dp-2]"; got != want {
			t.Errorf("all dataplanes: got %s, want %s", got, want)
		}
		inA, err := s.List(ctx, resource.DataplaneType, "mesh-a")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(names(inA)), "[mesh-a/dp-1 mesh-a/dp-3]"; got != want {
			t.Errorf("dataplanes in mesh-a: got %s, want %s", got, want)
		}
		meshes, err := s.List(ctx, resource.MeshType, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(meshes) != 1 || meshes[0].Meta.Name != "mesh-a" {
			t.Errorf("meshes: got %v", names(meshes))
		}
		none, err := s.List(ctx, resource.ZoneType, "")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("empty list: got %v, %v; want an empty, non-nil slice", none, err)
		}
	})

	t.Run("returned resources are copies", func(t *testing.T) {
		s := fresh(t)
		in := Dataplane("default", "dp-1", 1)
		created, err := s.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		in.Spec.(*v1alpha1.Dataplane).Networking.Address = "10.9.9.9"
		created.Spec.(*v1alpha1.Dataplane).Networking.Address = "10.9.9.9"
		got, _ := s.Get(ctx, in.Key())
		if a := got.Spec.(*v1alpha1.Dataplane).GetNetworking().GetAddress(); a != "10.0.0.1" {
			t.Errorf("store shares memory with callers: address became %q", a)
		}
	})

	t.Run("apply writes batches larger than one transaction", func(t *testing.T) {
		s := fresh(t)
		n := 3*store.MaxBatch + 7
		ops := make([]store.Op, 0, n)
		for i := range n {
			ops = append(ops, store.Op{Put: Dataplane("default", fmt.Sprintf("dp-%04d", i), uint32(i+1))})
		}
		if err := s.Apply(ctx, ops); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		all, err := s.List(ctx, resource.DataplaneType, "default")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != n {
			t.Fatalf("listed %d, want %d", len(all), n)
		}
		for i, r := range all {
			if port(r) != uint32(i+1) {
				t.Fatalf("%s has port %d, want %d", r.Meta.Name, port(r), i+1)
			}
		}
		var dels []store.Op
		for i := 0; i < n; i += 2 {
			dels = append(dels, store.Op{Delete: all[i].Key()})
		}
		dels = append(dels, store.Op{Delete: resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "never-existed"}})
		if err := s.Apply(ctx, dels); err != nil {
			t.Fatalf("Apply deletes: %v", err)
		}
		left, _ := s.List(ctx, resource.DataplaneType, "default")
		if len(left) != n/2 {
			t.Errorf("after deleting every other: %d left, want %d", len(left), n/2)
		}
	})

	t.Run("concurrent optimistic updates lose nothing", func(t *testing.T) {
		s := fresh(t)
		if _, err := s.Create(ctx, Dataplane("default", "counter", 1)); err != nil {
			t.Fatal(err)
		}
		const writers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					for {
						cur, err := s.Get(ctx, resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "counter"})
						if err != nil {
							errs <- err
							return
						}
						cur.Spec.(*v1alpha1.Dataplane).Networking.Inbound[0].Port++
						if _, err := s.Update(ctx, cur); err == nil {
							break
						} else if !store.IsConflict(err) {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "counter"})
		if port(got) != 1+writers*each {
			t.Errorf("counter is %d, want %d: an update was lost", port(got), 1+writers*each)
		}
	})

	t.Run("watch sees changes in order", func(t *testing.T) {
		s := fresh(t)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := s.Watch(wctx, resource.DataplaneType)
		if err != nil {
			t.Fatal(err)
		}
		created, err := s.Create(ctx, Dataplane("default", "dp-1", 1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: "other"}, Spec: &v1alpha1.Mesh{}}); err != nil {
			t.Fatal(err)
		}
		next := Dataplane("default", "dp-1", 2)
		next.Meta.Version = created.Meta.Version
		updated, err := s.Update(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, created.Key(), ""); err != nil {
			t.Fatal(err)
		}
		want := []struct {
			kind store.EventKind
			port uint32
		}{{store.Put, 1}, {store.Put, 2}, {store.Deleted, 0}}
		for i, w := range want {
			e := next1(t, ch)
			if e.Kind != w.kind || e.Resource.Meta.Name != "dp-1" || e.Resource.Meta.Type != resource.DataplaneType {
				t.Fatalf("event %d: got %s %s/%s, want %s dp-1", i, e.Kind, e.Resource.Meta.Type, e.Resource.Meta.Name, w.kind)
			}
			if w.kind == store.Put && port(e.Resource) != w.port {
				t.Errorf("event %d: port %d, want %d", i, port(e.Resource), w.port)
			}
			if i == 1 && e.Resource.Meta.Version != updated.Meta.Version {
				t.Errorf("update event version %q, want %q", e.Resource.Meta.Version, updated.Meta.Version)
			}
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel not closed after its context ended")
			}
		}
	})

	t.Run("watch sees apply batches", func(t *testing.T) {
		s := fresh(t)
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := s.Watch(wctx, resource.DataplaneType)
		if err != nil {
			t.Fatal(err)
		}
		const n = store.MaxBatch + 10
		var ops []store.Op
		for i := range n {
			ops = append(ops, store.Op{Put: Dataplane("default", fmt.Sprintf("dp-%d", i), 1)})
		}
		if err := s.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for len(seen) < n {
			e := next1(t, ch)
			seen[e.Resource.Meta.Name] = true
		}
	})
}

func next1(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed early")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return store.Event{}
}
