package crdstore

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// watchBuffer is how many events a watcher may lag behind before its watch
// is ended (and it must List and Watch again), as for the other stores.
const watchBuffer = 4096

// Watch implements store.Watcher with a Kubernetes watch that starts at
// the resourceVersion of a list made before Watch returns, so it sends
// exactly the changes made after. When the API server ends the watch (it
// does so every half hour or so) it is resumed from the last version seen;
// when it cannot be resumed (the version was compacted away, 410 Gone), or
// the watcher falls watchBuffer events behind, the channel is closed.
func (s *Store) Watch(ctx context.Context, t resource.Type) (<-chan store.Event, error) {
	ns := s.home
	if spread(t) {
		ns = ""
	}
	ri, err := s.resourceIn(t, ns)
	if err != nil {
		return nil, err
	}
	opts := metav1.ListOptions{LabelSelector: s.selector(""), Limit: 1}
	list, err := ri.List(ctx, opts)
	if err != nil {
		return nil, mapErr(resource.Key{Type: t}, err, 0)
	}
	opts = metav1.ListOptions{
		LabelSelector:       opts.LabelSelector,
		ResourceVersion:     list.GetResourceVersion(),
		AllowWatchBookmarks: true,
		TimeoutSeconds:      s.watchTimeout,
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	w, err := ri.Watch(wctx, opts)
	if err != nil {
		stop()
		cancel()
		return nil, mapErr(resource.Key{Type: t}, err, 0)
	}
	out := make(chan store.Event, s.watchBuffer)
	go func() {
		defer close(out)
		defer cancel()
		defer stop()
		s.pump(wctx, t, ri, opts, w, out)
	}()
	return out, nil
}

// pump forwards the events of w, and of the watches that resume it, to out
// until ctx ends or the watch can go on no more.
func (s *Store) pump(ctx context.Context, t resource.Type, ri dynamic.ResourceInterface, opts metav1.ListOptions, w watch.Interface, out chan<- store.Event) {
	defer func() { w.Stop() }()
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-w.ResultChan():
		}
		if !ok {
			if ctx.Err() != nil {
				return
			}
			w.Stop()
			var err error
			if w, err = ri.Watch(ctx, opts); err != nil {
				s.log.Info("watch ended: watchers list again", "type", t, "error", err)
				w = watch.NewEmptyWatch()
				return
			}
			continue
		}
		obj, isObj := ev.Object.(*unstructured.Unstructured)
		switch {
		case ev.Type == watch.Error || !isObj:
			// 410 Gone and its kin: the caller lists again.
			return
		case ev.Type == watch.Bookmark:
			opts.ResourceVersion = obj.GetResourceVersion()
			continue
		}
		opts.ResourceVersion = obj.GetResourceVersion()
		r, err := fromObject(t, obj)
		if err != nil {
			s.log.Warn("skipping an object the store cannot read", "error", err)
			continue
		}
		e := store.Event{Kind: store.Put, Resource: r}
		if ev.Type == watch.Deleted {
			e.Kind = store.Deleted
			r.Spec = nil
			r.Meta.Labels = nil
		}
		select {
		case out <- e:
		default:
			return // the watcher fell behind: it lists again
		}
	}
}
