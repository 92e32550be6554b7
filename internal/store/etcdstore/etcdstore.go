// Package etcdstore is a store.Store on etcd v3: versions are etcd mod
// revisions, conditional writes are transactions, and watches are etcd
// watches, so several processes can share one store.
package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// DefaultPrefix is where atoll keeps its keys in etcd.
const DefaultPrefix = "/atoll/resources/"

// listPage bounds one range request, so a large list never needs one huge
// response.
const listPage = 1000

// DefaultMaxTxnBytes is the default of Store.MaxTxnBytes: well under
// etcd's default request limit (--max-request-bytes, 1.5 MiB), leaving
// room for the request's own framing.
const DefaultMaxTxnBytes = 1 << 20

// opOverhead is what etcd's request encoding adds to each operation's key
// and value, rounded up.
const opOverhead = 32

// Store keeps resources in etcd under a key prefix.
type Store struct {
	client *clientv3.Client
	prefix string
	now    func() time.Time
	// FencePrefix is where fences (store.Fencer) are kept; empty means
	// under the resources' prefix, apart from every type's keys.
	FencePrefix string
	// MaxTxnBytes bounds the keys and values of one Apply transaction; it
	// must stay under the cluster's --max-request-bytes. A resource larger
	// than this cannot be stored (store.IsTooLarge). Zero means
	// DefaultMaxTxnBytes.
	MaxTxnBytes int
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

// Apply commits ops in transactions of at most store.MaxBatch operations
// (etcd's default limit per transaction) and at most MaxTxnBytes. Every put
// is encoded and checked first: if any is too large on its own, nothing is
// written and the error lists each one.
func (s *Store) Apply(ctx context.Context, ops []store.Op) error {
	return s.apply(ctx, ops, nil)
}

// apply is Apply with guard, compares every transaction must pass.
func (s *Store) apply(ctx context.Context, ops []store.Op, guard []clientv3.Cmp) error {
	limit := s.MaxTxnBytes
	if limit <= 0 {
		limit = DefaultMaxTxnBytes
	}
	now := s.now()
	etcdOps := make([]clientv3.Op, 0, len(ops))
	sizes := make([]int, 0, len(ops))
	var tooLarge []error
	for _, op := range ops {
		if op.Put == nil {
			k := s.key(op.Delete)
			etcdOps = append(etcdOps, clientv3.OpDelete(k))
			sizes = append(sizes, len(k)+opOverhead)
			continue
		}
		val, err := store.Marshal(store.ForApply(op.Put, now))
		if err != nil {
			return err
		}
		k := s.key(op.Put.Key())
		n := len(k) + len(val) + opOverhead
		if n > limit {
			tooLarge = append(tooLarge, &store.TooLargeError{Key: op.Put.Key(), Size: n, Limit: limit})
			continue
		}
		etcdOps = append(etcdOps, clientv3.OpPut(k, string(val)))
		sizes = append(sizes, n)
	}
	if len(tooLarge) > 0 {
		return errors.Join(tooLarge...)
	}
	start, size := 0, 0
	for i := range etcdOps {
		if i-start == store.MaxBatch || size+sizes[i] > limit {
			if err := s.commit(ctx, etcdOps[start:i], ops[start:i], guard); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += sizes[i]
	}
	return s.commit(ctx, etcdOps[start:], ops[start:], guard)
}

// commit runs one transaction of Apply. A cluster whose request limit is
// below MaxTxnBytes refuses it as too large: it is split in halves until a
// single put is refused, which is then named as when Apply finds it too
// large itself, so one resource never fails the others.
func (s *Store) commit(ctx context.Context, etcdOps []clientv3.Op, ops []store.Op, guard []clientv3.Cmp) error {
	if len(etcdOps) == 0 {
		return nil
	}
	resp, err := s.client.Txn(ctx).If(guard...).Then(etcdOps...).Commit()
	if err == nil {
		if !resp.Succeeded {
			return fmt.Errorf("applying %d changes to etcd: %w", len(etcdOps), store.ErrFenced)
		}
		return nil
	}
	tooLarge := errors.Is(err, rpctypes.ErrRequestTooLarge) || status.Code(err) == codes.ResourceExhausted
	switch {
	case tooLarge && len(ops) > 1:
		half := len(ops) / 2
		if err := s.commit(ctx, etcdOps[:half], ops[:half], guard); err != nil {
			return err
		}
		return s.commit(ctx, etcdOps[half:], ops[half:], guard)
	case tooLarge && ops[0].Put != nil:
		return fmt.Errorf("%w (etcd: %v)", &store.TooLargeError{Key: ops[0].Put.Key(), Size: len(etcdOps[0].ValueBytes())}, err)
	}
	return fmt.Errorf("applying %d changes to etcd: %w", len(etcdOps), err)
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

var _ store.Fencer = (*Store)(nil)

// fenceKey is where the fence named name is kept: beside the resources'
// prefix (FencePrefix), never under a type's.
func (s *Store) fenceKey(name string) string {
	prefix := s.FencePrefix
	if prefix == "" {
		prefix = s.prefix + "_fences/"
	}
	return prefix + name
}

// Fence writes the fence's key; the revision of that write is the fence.
// Every transaction of the fence's Apply compares the key's revision with
// it, so etcd itself refuses a write once a newer fence was written, even
// a request sent long before and applied late.
func (s *Store) Fence(ctx context.Context, name string) (store.Fence, error) {
	key := s.fenceKey(name)
	resp, err := s.client.Put(ctx, key, name)
	if err != nil {
		return nil, fmt.Errorf("taking fence %q in etcd: %w", name, err)
	}
	return &fence{s: s, guard: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", resp.Header.Revision)}}, nil
}

func (s *Store) DropFence(ctx context.Context, name string) error {
	if _, err := s.client.Delete(ctx, s.fenceKey(name)); err != nil {
		return fmt.Errorf("removing fence %q from etcd: %w", name, err)
	}
	return nil
}

type fence struct {
	s     *Store
	guard []clientv3.Cmp
}

func (f *fence) Apply(ctx context.Context, ops []store.Op) error { return f.s.apply(ctx, ops, f.guard) }
