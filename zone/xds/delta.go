package xds

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// edsCache holds a mesh's ClusterLoadAssignments. State-of-the-world
// watches are go-control-plane's linear cache; incremental (delta) watches,
// which Envoy gateways open on every cluster, are served here so that an
// endpoint change costs work per watch of the changed clusters — the linear
// cache re-registers every watch on every name it subscribes to after each
// response, which at 1,000 gateways × 1,000 clusters dominates a push.
type edsCache struct {
	sotw *cachev3.LinearCache

	mu      sync.Mutex
	prefix  string
	version uint64
	res     map[string]*edsEntry
	watches map[*deltaWatch]struct{}
}

type edsEntry struct {
	name     string
	version  string
	resource types.Resource
	marshal  func() ([]byte, error) // once per version
}

type deltaWatch struct {
	req *cachev3.DeltaRequest
	sub cachev3.Subscription
	ch  chan cachev3.DeltaResponse
}

func newEDSCache(sotw *cachev3.LinearCache, versionPrefix string) *edsCache {
	return &edsCache{sotw: sotw, prefix: versionPrefix, res: map[string]*edsEntry{}, watches: map[*deltaWatch]struct{}{}}
}

// UpdateResources changes and removes resources, for both kinds of watch.
func (c *edsCache) UpdateResources(upd map[string]types.Resource, del []string) error {
	if err := c.sotw.UpdateResources(upd, del); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version++
	version := c.prefix + strconv.FormatUint(c.version, 10)
	modified := make([]string, 0, len(upd)+len(del))
	for name, r := range upd {
		c.res[name] = &edsEntry{name: name, version: version, resource: r,
			marshal: sync.OnceValues(func() ([]byte, error) { return cachev3.MarshalResource(r) })}
		modified = append(modified, name)
	}
	for _, name := range del {
		delete(c.res, name)
		modified = append(modified, name)
	}
	for w := range c.watches {
		if resp := c.respond(w, modified); resp != nil {
			delete(c.watches, w)
			w.ch <- resp // one-shot watches: buffered for one response
		}
	}
	return nil
}

// GetResources returns the current resources.
func (c *edsCache) GetResources() map[string]types.Resource { return c.sotw.GetResources() }

func (c *edsCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, ch chan cachev3.Response) (func(), error) {
	return c.sotw.CreateWatch(req, sub, ch)
}

func (c *edsCache) Fetch(ctx context.Context, req *cachev3.Request) (cachev3.Response, error) {
	return c.sotw.Fetch(ctx, req)
}

// CreateDeltaWatch answers at once when the client lacks something, and
// otherwise waits for a change of what it subscribes to.
func (c *edsCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, ch chan cachev3.DeltaResponse) (func(), error) {
	w := &deltaWatch{req: req, sub: sub, ch: ch}
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp := c.respond(w, nil); resp != nil {
		ch <- resp
		return func() {}, nil
	}
	c.watches[w] = struct{}{}
	return func() {
		c.mu.Lock()
		delete(c.watches, w)
		c.mu.Unlock()
	}, nil
}

// respond builds w's response: for a new watch (modified nil), everything
// the client lacks; after an update, what of modified it subscribes to and
// lacks. It returns nil when there is nothing to send. Callers hold mu.
func (c *edsCache) respond(w *deltaWatch, modified []string) cachev3.DeltaResponse {
	returned := w.sub.ReturnedResources()
	subscribed := w.sub.SubscribedResources()
	wildcard := w.sub.IsWildcard()
	wants := func(name string) bool {
		_, ok := subscribed[name]
		return wildcard || ok
	}
	var changed []*edsEntry
	var removed []string
	consider := func(name string) {
		if e, exists := c.res[name]; exists {
			if v := returned[name]; v != e.version && wants(name) {
				changed = append(changed, e)
			}
		} else if _, known := returned[name]; known {
			removed = append(removed, name)
		}
	}
	switch {
	case modified != nil:
		for _, name := range modified {
			consider(name)
		}
	case wildcard:
		for name := range c.res {
			consider(name)
		}
		for name := range returned {
			if _, exists := c.res[name]; !exists {
				removed = append(removed, name)
			}
		}
	default:
		for name := range subscribed {
			consider(name)
		}
	}
	if len(changed) == 0 && len(removed) == 0 {
		return nil
	}
	next := make(map[string]string, len(returned)+len(changed))
	for name, v := range returned {
		if wants(name) {
			next[name] = v
		}
	}
	for _, e := range changed {
		next[e.name] = e.version
	}
	for _, name := range removed {
		delete(next, name)
	}
	return &deltaResponse{req: w.req, version: c.prefix + strconv.FormatUint(c.version, 10), resources: changed, removed: removed, next: next}
}

// deltaResponse carries resources marshalled once per version, shared by
// every watch that gets them.
type deltaResponse struct {
	req       *cachev3.DeltaRequest
	version   string
	resources []*edsEntry
	removed   []string
	next      map[string]string

	once sync.Once
	resp *discoveryv3.DeltaDiscoveryResponse
	err  error
}

func (r *deltaResponse) GetDeltaDiscoveryResponse() (*discoveryv3.DeltaDiscoveryResponse, error) {
	r.once.Do(func() {
		out := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: r.req.GetTypeUrl(), RemovedResources: r.removed, SystemVersionInfo: r.version}
		for _, e := range r.resources {
			b, err := e.marshal()
			if err != nil {
				r.err = fmt.Errorf("encoding %s: %w", e.name, err)
				return
			}
			out.Resources = append(out.Resources, &discoveryv3.Resource{Name: e.name, Version: e.version,
				Resource: &anypb.Any{TypeUrl: r.req.GetTypeUrl(), Value: b}})
		}
		r.resp = out
	})
	return r.resp, r.err
}

func (r *deltaResponse) GetDeltaRequest() *cachev3.DeltaRequest  { return r.req }
func (r *deltaResponse) GetSystemVersion() (string, error)       { return r.version, nil }
func (r *deltaResponse) GetResponseVersion() string              { return r.version }
func (r *deltaResponse) GetNextVersionMap() map[string]string    { return r.next }
func (r *deltaResponse) GetReturnedResources() map[string]string { return r.next }
func (r *deltaResponse) GetContext() context.Context             { return context.Background() }
