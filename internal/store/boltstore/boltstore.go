// Package boltstore is a store.Store in a single bbolt file: durable on
// every committed write, for a zone control plane's local state.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

var bucketName = []byte("resources")

// Store is a bbolt-backed store. Versions are the file's write sequence, so
// they only grow, across restarts too.
type Store struct {
	db *bolt.DB
	// writeMu orders commits and their events.
	writeMu sync.Mutex
	hub     store.Hub
	now     func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the database file at path. It fails quickly, with
// a message saying so, when another process holds the file.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: another process is using it: stop it or use another data directory", path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketName)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// value layout: 8-byte big-endian revision, then the encoded resource.
func encodeValue(rev uint64, r *resource.Resource) ([]byte, error) {
	data, err := store.Marshal(r)
	if err != nil {
		return nil, err
	}
	v := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(v, rev)
	copy(v[8:], data)
	return v, nil
}

func decodeValue(v []byte) (*resource.Resource, error) {
	if len(v) < 8 {
		return nil, errors.New("stored value is truncated")
	}
	return store.Unmarshal(v[8:], strconv.FormatUint(binary.BigEndian.Uint64(v), 10))
}

func (s *Store) Get(ctx context.Context, key resource.Key) (*resource.Resource, error) {
	var out *resource.Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketName).Get([]byte(store.KeyPath(key)))
		if v == nil {
			return store.NotFound(key)
		}
		var err error
		out, err = decodeValue(v)
		return err
	})
	return out, err
}

func (s *Store) List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error) {
	out := make([]*resource.Resource, 0)
	prefix := []byte(store.ListPrefix(t, mesh))
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketName).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			r, err := decodeValue(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// write runs fn in a write transaction and publishes its events after the
// commit.
func (s *Store) write(fn func(b *bolt.Bucket, events *[]store.Event) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var events []store.Event
	if err := s.db.Update(func(tx *bolt.Tx) error {
		events = events[:0]
		return fn(tx.Bucket(bucketName), &events)
	}); err != nil {
		return err
	}
	s.hub.Publish(events...)
	return nil
}

func put(b *bolt.Bucket, r *resource.Resource, events *[]store.Event) error {
	rev, err := b.NextSequence()
	if err != nil {
		return err
	}
	r.Meta.Version = strconv.FormatUint(rev, 10)
	v, err := encodeValue(rev, r)
	if err != nil {
		return err
	}
	if err := b.Put([]byte(store.KeyPath(r.Key())), v); err != nil {
		return err
	}
	*events = append(*events, store.Event{Kind: store.Put, Resource: r.Clone()})
	return nil
}

func del(b *bolt.Bucket, key resource.Key, events *[]store.Event) error {
	rev, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := b.Delete([]byte(store.KeyPath(key))); err != nil {
		return err
	}
	*events = append(*events, store.Event{Kind: store.Deleted, Resource: &resource.Resource{
		Meta: resource.Meta{Type: key.Type, Mesh: key.Mesh, Name: key.Name, Version: strconv.FormatUint(rev, 10)},
	}})
	return nil
}

func (s *Store) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	var out *resource.Resource
	err := s.write(func(b *bolt.Bucket, events *[]store.Event) error {
		key := r.Key()
		if b.Get([]byte(store.KeyPath(key))) != nil {
			return store.AlreadyExists(key)
		}
		out = store.ForCreate(r, s.now())
		return put(b, out, events)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	var out *resource.Resource
	err := s.write(func(b *bolt.Bucket, events *[]store.Event) error {
		key := r.Key()
		v := b.Get([]byte(store.KeyPath(key)))
		if v == nil {
			return store.NotFound(key)
		}
		if len(v) < 8 {
			return fmt.Errorf("%s: stored value is truncated", key)
		}
		// Only the old meta matters (version, creation time): its spec
		// may be large and is not decoded.
		old, err := store.UnmarshalMeta(v[8:], strconv.FormatUint(binary.BigEndian.Uint64(v), 10))
		if err != nil {
			return err
		}
		if old.Version != r.Meta.Version {
			return store.Conflict(key)
		}
		out = store.ForUpdate(r, &resource.Resource{Meta: old}, s.now())
		return put(b, out, events)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) Delete(ctx context.Context, key resource.Key, version string) error {
	return s.write(func(b *bolt.Bucket, events *[]store.Event) error {
		v := b.Get([]byte(store.KeyPath(key)))
		if v == nil {
			return store.NotFound(key)
		}
		if version != "" {
			if len(v) < 8 || strconv.FormatUint(binary.BigEndian.Uint64(v), 10) != version {
				return store.Conflict(key)
			}
		}
		return del(b, key, events)
	})
}

// Apply commits ops in transactions of at most store.MaxBatch operations.
func (s *Store) Apply(ctx context.Context, ops []store.Op) error {
	for start := 0; start < len(ops); start += store.MaxBatch {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := ops[start:min(start+store.MaxBatch, len(ops))]
		now := s.now()
		err := s.write(func(b *bolt.Bucket, events *[]store.Event) error {
			for _, op := range chunk {
				if op.Put != nil {
					if err := put(b, store.ForApply(op.Put, now), events); err != nil {
						return err
					}
				} else if b.Get([]byte(store.KeyPath(op.Delete))) != nil {
					if err := del(b, op.Delete, events); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Watch(ctx context.Context, t resource.Type) (<-chan store.Event, error) {
	return s.hub.Watch(ctx, t), nil
}

// Close ends every watch and closes the file.
func (s *Store) Close() error {
	s.hub.Close()
	return s.db.Close()
}
