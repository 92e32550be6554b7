package crdstore

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// placeAllFrom is the number of ops on one spread type from which Apply
// finds every object of the type with one paged List first, instead of
// querying for each op: more than a transaction of the other stores
// holds, so the first reconcile of a zone's pods (thousands of puts) takes
// one List, while the small batches of steady churn, where a List of every
// object would cost more than it saves, query per op.
const placeAllFrom = store.MaxBatch + 1

// placement is where an object lives and its resourceVersion, as a List
// saw it.
type placement struct {
	namespace, version string
}

// placeAll lists, for each spread type with at least placeAllFrom of the
// keys in ops, where each of its objects lives, by object name. Types with
// fewer are absent from the result.
func (s *Store) placeAll(ctx context.Context, ops map[resource.Key]int) (map[resource.Type]map[string]placement, error) {
	count := map[resource.Type]int{}
	for key := range ops {
		if spread(key.Type) {
			count[key.Type]++
		}
	}
	var out map[resource.Type]map[string]placement
	for t, n := range count {
		if n < placeAllFrom {
			continue
		}
		ri, err := s.resourceIn(t, "")
		if err != nil {
			return nil, err
		}
		where := map[string]placement{}
		opts := metav1.ListOptions{LabelSelector: s.selector(""), Limit: listPage}
		for {
			list, err := ri.List(ctx, opts)
			if err != nil {
				return nil, mapErr(resource.Key{Type: t}, err, 0)
			}
			for _, o := range list.Items {
				where[o.GetName()] = placement{namespace: o.GetNamespace(), version: o.GetResourceVersion()}
			}
			if opts.Continue = list.GetContinue(); opts.Continue == "" {
				break
			}
		}
		if out == nil {
			out = map[resource.Type]map[string]placement{}
		}
		out[t] = where
	}
	return out, nil
}

// applyPutPlaced writes c knowing where its object was when where was
// listed: a create when it was nowhere, an update at that version when it
// is in c's namespace. A put that moves namespaces, or whose object
// changed since the List, takes the general path.
func (s *Store) applyPutPlaced(ctx context.Context, c *resource.Resource, where map[string]placement) error {
	ns := s.namespaceOf(c)
	p, found := where[ObjectName(c.Key())]
	switch {
	case !found:
		c.Meta.Version = ""
		_, err := s.create(ctx, c)
		if !store.IsAlreadyExists(err) {
			return err
		}
	case p.namespace == ns:
		c.Meta.Version = p.version
		_, err := s.update(ctx, c, ns)
		if !store.IsConflict(err) && !store.IsNotFound(err) {
			return err
		}
	}
	return s.applyPut(ctx, c)
}

// applyDeletePlaced deletes the object of key where the List saw it; one
// the List did not see needs no delete.
func (s *Store) applyDeletePlaced(ctx context.Context, key resource.Key, where map[string]placement) error {
	p, found := where[ObjectName(key)]
	if !found {
		return nil
	}
	if err := s.delete(ctx, key, p.namespace, ""); err != nil && !store.IsNotFound(err) {
		return err
	}
	return nil
}

// locateIn is locate, trying the namespace ns first: where a put of a
// spread type would place its object, so that updating an object that
// stays where it is takes a Get by name rather than a query over every
// namespace.
func (s *Store) locateIn(ctx context.Context, key resource.Key, ns string) (*unstructured.Unstructured, error) {
	if !spread(key.Type) || ns == "" {
		return s.locate(ctx, key)
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	ri, err := s.resourceIn(key.Type, ns)
	if err != nil {
		return nil, err
	}
	obj, err := ri.Get(ctx, ObjectName(key), metav1.GetOptions{})
	if err == nil && obj.GetLabels()[HomeLabel] == s.home {
		return obj, nil
	}
	// Not there (or another store's): it may live in another namespace.
	return s.locate(ctx, key)
}
