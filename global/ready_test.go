package global

import (
	"context"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// slowDataplanes holds back the list of Dataplanes until release closes,
// like an etcd still loading a large store.
type slowDataplanes struct {
	store.Store
	release chan struct{}
}

func (s *slowDataplanes) List(ctx context.Context, t resource.Type, mesh string) ([]*resource.Resource, error) {
	if t == resource.DataplaneType {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.List(ctx, t, mesh)
}

// With a Direct mesh, no zone is served before the endpoint index holds
// the Dataplanes: a zone served then would be told that every
// ServiceEndpoints is gone.
func TestZonesAreServedOnlyOnceTheEndpointIndexIsLoaded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mem := memstore.New()
	if _, err := mem.Create(ctx, &resource.Resource{
		Meta: resource.Meta{Type: resource.MeshType, Name: "default"},
		Spec: &v1alpha1.Mesh{CrossZone: &v1alpha1.Mesh_CrossZone{Mode: v1alpha1.Mesh_CrossZone_Direct}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Create(ctx, storedDP("zone-2", "default", "backend-1", "10.0.2.1", "", 8080, true, "backend")); err != nil {
		t.Fatal(err)
	}
	st := &slowDataplanes{Store: mem, release: make(chan struct{})}
	z := replica(t, st, "replica-a")
	if err := z.cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go z.Run(ctx, time.Hour)

	if z.Loaded(ctx) == nil {
		t.Fatal("/readyz check passes while the endpoint index is loading")
	}
	refused, stop := context.WithCancel(ctx)
	stop() // a zone that gives up waiting
	if ep, err := z.Connect(refused, "zone-1", nil); err == nil || ep != nil {
		t.Fatalf("a zone was served while the endpoint index was loading: %v", err)
	}

	close(st.release)
	select {
	case <-z.loaded:
	case <-time.After(30 * time.Second):
		t.Fatal("the endpoint index never reported loaded")
	}
	if err := z.Loaded(ctx); err != nil {
		t.Fatalf("/readyz check after loading: %v", err)
	}
	ep, err := z.Connect(ctx, "zone-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ep.Desired(ctx, resource.ServiceEndpointsType)
	if err != nil {
		t.Fatal(err)
	}
	eps := endpointsOf(t, got)
	if len(eps["zone-2/backend"]) != 1 {
		t.Fatalf("zone-1 is sent %v, want zone-2's backend instance", eps)
	}
}

// Without a Direct mesh there is nothing to load: zones are served at once.
func TestZonesAreServedAtOnceWithoutDirectMeshes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &slowDataplanes{Store: memstore.New(), release: make(chan struct{})}
	z := replica(t, st, "replica-a")
	if err := z.cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go z.Run(ctx, time.Hour)
	if _, err := z.Connect(ctx, "zone-1", nil); err != nil {
		t.Fatalf("a zone was refused with no Direct mesh: %v", err)
	}
}
