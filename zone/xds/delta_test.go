package xds

import (
	"maps"
	"slices"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

func cla(name string) types.Resource {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name}
}

// deltaClient drives the delta EDS cache as go-control-plane's delta
// server does: one watch at a time, the returned versions kept from each
// response.
type deltaClient struct {
	t   *testing.T
	c   *edsCache
	sub stream.Subscription
	ch  chan cachev3.DeltaResponse
}

func newDeltaTestClient(t *testing.T, c *edsCache, names []string, known map[string]string) *deltaClient {
	d := &deltaClient{t: t, c: c, sub: stream.NewDeltaSubscription(names, nil, known, false), ch: make(chan cachev3.DeltaResponse, 1)}
	d.watch()
	return d
}

func (d *deltaClient) watch() {
	if _, err := d.c.CreateDeltaWatch(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeEDS}, d.sub, d.ch); err != nil {
		d.t.Fatal(err)
	}
}

// next returns the names sent and removed by the pending response, or nil
// when there is none, and opens the next watch.
func (d *deltaClient) next() (sent, removed []string) {
	d.t.Helper()
	select {
	case r := <-d.ch:
		resp, err := r.GetDeltaDiscoveryResponse()
		if err != nil {
			d.t.Fatal(err)
		}
		for _, res := range resp.GetResources() {
			var got endpointv3.ClusterLoadAssignment
			if err := res.GetResource().UnmarshalTo(&got); err != nil || got.GetClusterName() != res.GetName() {
				d.t.Fatalf("resource %s does not decode as itself: %v", res.GetName(), err)
			}
			sent = append(sent, res.GetName())
		}
		d.sub.SetReturnedResources(r.GetNextVersionMap())
		d.watch()
		slices.Sort(sent)
		slices.Sort(resp.GetRemovedResources())
		return sent, resp.GetRemovedResources()
	default:
		return nil, nil
	}
}

func TestDeltaEDSSendsOnlyWhatChanged(t *testing.T) {
	c := newEDSCache(cachev3.NewLinearCache(typeEDS), "test-")
	if err := c.UpdateResources(map[string]types.Resource{"a": cla("a"), "b": cla("b"), "c": cla("c")}, nil); err != nil {
		t.Fatal(err)
	}
	named := newDeltaTestClient(t, c, []string{"a", "b"}, nil)
	wild := newDeltaTestClient(t, c, []string{"*"}, nil)
	if sent, _ := named.next(); !slices.Equal(sent, []string{"a", "b"}) {
		t.Fatalf("first response %v, want a and b", sent)
	}
	if sent, _ := wild.next(); !slices.Equal(sent, []string{"a", "b", "c"}) {
		t.Fatalf("wildcard first response %v, want everything", sent)
	}
	if sent, removed := named.next(); sent != nil || removed != nil {
		t.Fatalf("nothing changed, yet %v sent, %v removed", sent, removed)
	}

	// b changes: only b goes, and only to whoever subscribes to it.
	c.UpdateResources(map[string]types.Resource{"b": cla("b")}, nil)
	if sent, _ := named.next(); !slices.Equal(sent, []string{"b"}) {
		t.Fatalf("after b changed: %v", sent)
	}
	if sent, _ := wild.next(); !slices.Equal(sent, []string{"b"}) {
		t.Fatalf("wildcard after b changed: %v", sent)
	}
	c.UpdateResources(map[string]types.Resource{"c": cla("c"), "d": cla("d")}, nil)
	if sent, _ := named.next(); sent != nil {
		t.Fatalf("c and d changed, not subscribed, yet %v sent", sent)
	}
	if sent, _ := wild.next(); !slices.Equal(sent, []string{"c", "d"}) {
		t.Fatalf("wildcard after c, d: %v", sent)
	}

	// a goes away: removed, for whoever had it.
	c.UpdateResources(nil, []string{"a"})
	if _, removed := named.next(); !slices.Equal(removed, []string{"a"}) {
		t.Fatalf("after a was deleted: removed %v", removed)
	}
	if _, removed := wild.next(); !slices.Equal(removed, []string{"a"}) {
		t.Fatalf("wildcard after a was deleted: removed %v", removed)
	}

	// A reconnect with what it holds gets nothing; with an old version of
	// b, b.
	held := maps.Clone(wild.sub.ReturnedResources())
	if sent, removed := newDeltaTestClient(t, c, []string{"*"}, held).next(); sent != nil || removed != nil {
		t.Fatalf("an unchanged reconnect got %v, removed %v", sent, removed)
	}
	held["b"] = "old"
	if sent, _ := newDeltaTestClient(t, c, []string{"*"}, held).next(); !slices.Equal(sent, []string{"b"}) {
		t.Fatalf("a reconnect with an old b got %v", sent)
	}
	// The state-of-the-world side holds the same.
	if got := c.GetResources(); len(got) != 3 || got["a"] != nil {
		t.Fatalf("state of the world holds %v", got)
	}
}
