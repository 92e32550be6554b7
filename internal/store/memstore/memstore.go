// Package memstore is an in-memory store.Store, for unit tests and for
// state that need not survive a restart.
package memstore

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// Store keeps resources in a map. The zero value is not usable: call New.
type Store struct {
	mu       sync.RWMutex
	items    map[resource.Key]*resource.Resource
	revision int64
	hub      store.Hub
	now      func() time.Time
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{items: map[resource.Key]*resource.Resource{}, now: time.Now}
}

func (s *Store) Get(ctx context.Context, key resource.Key) (*resource.Resource, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.items[key]
	if !ok {
		return nil, store.NotFound(key)
	}
	return r.Clone(), nil
}

func (s *Store) List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error) {
	s.mu.RLock()
	out := make([]*resource.Resource, 0)
	for k, r := range s.items {
		if k.Type == t && (mesh == "" || k.Mesh == mesh) {
			out = append(out, r.Clone())
		}
	}
	s.mu.RUnlock()
	sortResources(out)
	return out, nil
}

func sortResources(rs []*resource.Resource) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Meta.Mesh != rs[j].Meta.Mesh {
			return rs[i].Meta.Mesh < rs[j].Meta.Mesh
		}
		return rs[i].Meta.Name < rs[j].Meta.Name
	})
}

func (s *Store) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.Key()
	if _, ok := s.items[key]; ok {
		return nil, store.AlreadyExists(key)
	}
	c := store.ForCreate(r, s.now())
	s.put(c)
	return c.Clone(), nil
}

func (s *Store) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := r.Key()
	old, ok := s.items[key]
	if !ok {
		return nil, store.NotFound(key)
	}
	if old.Meta.Version != r.Meta.Version {
		return nil, store.Conflict(key)
	}
	c := store.ForUpdate(r, old, s.now())
	s.put(c)
	return c.Clone(), nil
}

func (s *Store) Delete(ctx context.Context, key resource.Key, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.items[key]
	if !ok {
		return store.NotFound(key)
	}
	if version != "" && old.Meta.Version != version {
		return store.Conflict(key)
	}
	s.delete(key)
	return nil
}

func (s *Store) Apply(ctx context.Context, ops []store.Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, op := range ops {
		if op.Put != nil {
			s.put(store.ForApply(op.Put, now))
		} else if _, ok := s.items[op.Delete]; ok {
			s.delete(op.Delete)
		}
	}
	return nil
}

func (s *Store) Watch(ctx context.Context, t resource.Type) (<-chan store.Event, error) {
	return s.hub.Watch(ctx, t), nil
}

func (s *Store) Close() error {
	s.hub.Close()
	return nil
}

// put stores c (owned by the store from now on) under a new revision.
// Callers hold s.mu.
func (s *Store) put(c *resource.Resource) {
	s.revision++
	c.Meta.Version = strconv.FormatInt(s.revision, 10)
	s.items[c.Key()] = c
	s.hub.Publish(store.Event{Kind: store.Put, Resource: c.Clone()})
}

func (s *Store) delete(key resource.Key) {
	s.revision++
	delete(s.items, key)
	s.hub.Publish(store.Event{Kind: store.Deleted, Resource: &resource.Resource{
		Meta: resource.Meta{Type: key.Type, Mesh: key.Mesh, Name: key.Name, Version: strconv.FormatInt(s.revision, 10)},
	}})
}
