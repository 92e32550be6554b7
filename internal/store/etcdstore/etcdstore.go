// Package etcdstore is a store.Store on etcd v3: versions are etcd mod
// revisions, conditional writes are transactions, and watches are etcd
// watches, so several processes can share one store.
package etcdstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// DefaultPrefix is where atoll keeps its keys in etcd.
const DefaultPrefix = "/atoll/resources/"

// listPage bounds one range request, so a large list never needs one huge
// response.
const listPage = 1000

// Store keeps resources in etcd under a key prefix.
type Store struct {
	client *clientv3.Client
	prefix string
	now    func() time.Time
}

var _ store.Store = (*Store)(nil)

// New returns a store using client (owned by the caller) under prefix.
func New(client *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: prefix, now: time.Now}
}

func (s *Store) key(k resource.Key) string { return s.prefix + store.KeyPath(k) }

func version(rev int64) string { return strconv.FormatInt(rev, 10) }

func parseVersion(key resource.Key, v string) (int64, error) {
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil || rev <= 0 {
		return 0, fmt.Errorf("%s: version %q is not one this store issued: %w", key, v, store.ErrConflict)
	}
	return rev, nil
}

func (s *Store) Get(ctx context.Context, key resource.Key) (*resource.Resource, error) {
	resp, err := s.client.Get(ctx, s.key(key))
	if err != nil {
		return nil, fmt.Errorf("reading %s from etcd: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, store.NotFound(key)
	}
	kv := resp.Kvs[0]
	return store.Unmarshal(kv.Value, version(kv.ModRevision))
}

// List reads page by page at one revision, so the result is a consistent
// snapshot.
func (s *Store) List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error) {
	prefix := s.prefix + store.ListPrefix(t, mesh)
	end := clientv3.GetPrefixRangeEnd(prefix)
	out := make([]*resource.Resource, 0)
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.client.Get(ctx, from, opts...)
		if err != nil {
			return nil, fmt.Errorf("listing %s from etcd: %w", t, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			r, err := store.Unmarshal(kv.Value, version(kv.ModRevision))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kv.Key, err)
			}
			out = append(out, r)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func (s *Store) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	c := store.ForCreate(r, s.now())
	val, err := store.Marshal(c)
	if err != nil {
		return nil, err
	}
	k := s.key(c.Key())
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(val))).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("creating %s in etcd: %w", c.Key(), err)
	}
	if !resp.Succeeded {
		return nil, store.AlreadyExists(c.Key())
	}
	c.Meta.Version = version(resp.Header.Revision)
	return c, nil
}

func (s *Store) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	key := r.Key()
	rev, err := parseVersion(key, r.Meta.Version)
	if err != nil {
		if _, gerr := s.Get(ctx, key); store.IsNotFound(gerr) {
			return nil, gerr
		}
		return nil, err
	}
	// Only the old meta matters (version, creation time): a large spec is
	// not decoded.
	cur, err := s.client.Get(ctx, s.key(key))
	if err != nil {
		return nil, fmt.Errorf("reading %s from etcd: %w", key, err)
	}
	if len(cur.Kvs) == 0 {
		return nil, store.NotFound(key)
	}
	old, err := store.UnmarshalMeta(cur.Kvs[0].Value, version(cur.Kvs[0].ModRevision))
	if err != nil {
		return nil, err
	}
	if old.Version != r.Meta.Version {
		return nil, store.Conflict(key)
	}
	c := store.ForUpdate(r, &resource.Resource{Meta: old}, s.now())
	val, err := store.Marshal(c)
	if err != nil {
		return nil, err
	}
	k := s.key(key)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpPut(k, string(val))).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("updating %s in etcd: %w", key, err)
	}
	if !resp.Succeeded {
		return nil, store.Conflict(key)
	}
	c.Meta.Version = version(resp.Header.Revision)
	return c, nil
}

func (s *Store) Delete(ctx context.Context, key resource.Key, ver string) error {
	k := s.key(key)
	if ver == "" {
		resp, err := s.client.Delete(ctx, k)
		if err != nil {
			return fmt.Errorf("deleting %s from etcd: %w", key, err)
		}
		if resp.Deleted == 0 {
			return store.NotFound(key)
		}
		return nil
	}
	rev, err := parseVersion(key, ver)
	if err != nil {
		return err
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
		Then(clientv3.OpDelete(k)).
		Else(clientv3.OpGet(k, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("deleting %s from etcd: %w", key, err)
	}
	if !resp.Succeeded {
		if resp.Responses[0].GetResponseRange().GetCount() == 0 {
			return store.NotFound(key)
		}
		return store.Conflict(key)
	}
	return nil
}

// Apply commits ops in transactions of at most store.MaxBatch operations,
// etcd's default limit per transaction.
func (s *Store) Apply(ctx context.Context, ops []store.Op) error {
	now := s.now()
	for start := 0; start < len(ops); start += store.MaxBatch {
		chunk := ops[start:min(start+store.MaxBatch, len(ops))]
		etcdOps := make([]clientv3.Op, 0, len(chunk))
		for _, op := range chunk {
			if op.Put == nil {
				etcdOps = append(etcdOps, clientv3.OpDelete(s.key(op.Delete)))
				continue
			}
			val, err := store.Marshal(store.ForApply(op.Put, now))
			if err != nil {
				return err
			}
			etcdOps = append(etcdOps, clientv3.OpPut(s.key(op.Put.Key()), string(val)))
		}
		if _, err := s.client.Txn(ctx).Then(etcdOps...).Commit(); err != nil {
			return fmt.Errorf("applying %d changes to etcd: %w", len(etcdOps), err)
		}
	}
	return nil
}

// Watch starts an etcd watch at the current revision, so no write made
// after Watch returns is missed.
func (s *Store) Watch(ctx context.Context, t resource.Type) (<-chan store.Event, error) {
	prefix := s.prefix + store.ListPrefix(t, "")
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("starting watch of %s in etcd: %w", t, err)
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.client.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	out := make(chan store.Event, 4096)
	go func() {
		defer close(out)
		defer cancel()
		for wr := range wch {
			if wr.Err() != nil {
				return
			}
			for _, ev := range wr.Events {
				e, err := s.event(ev)
				if err != nil {
					continue // a foreign or corrupt key under our prefix
				}
				select {
				case out <- e:
				default:
					return // the watcher cannot keep up: end the watch
				}
			}
		}
	}()
	return out, nil
}

func (s *Store) event(ev *clientv3.Event) (store.Event, error) {
	if ev.Type == clientv3.EventTypeDelete {
		key, err := store.ParseKeyPath(string(ev.Kv.Key[len(s.prefix):]))
		if err != nil {
			return store.Event{}, err
		}
		return store.Event{Kind: store.Deleted, Resource: &resource.Resource{
			Meta: resource.Meta{Type: key.Type, Mesh: key.Mesh, Name: key.Name, Version: version(ev.Kv.ModRevision)},
		}}, nil
	}
	r, err := store.Unmarshal(ev.Kv.Value, version(ev.Kv.ModRevision))
	if err != nil {
		return store.Event{}, err
	}
	return store.Event{Kind: store.Put, Resource: r}, nil
}

// Close does nothing: the client belongs to the caller, and watches end
// with their contexts.
func (s *Store) Close() error { return nil }
