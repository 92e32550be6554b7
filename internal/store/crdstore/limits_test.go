package crdstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// big returns a Dataplane that passes the schema and encodes to about
// inbounds × 8 KiB.
func big(name string, inbounds int) *resource.Resource {
	r := storetest.Dataplane("default", name, 1)
	n := r.Spec.(*v1alpha1.Dataplane).Networking
	n.Inbound = nil
	for i := range inbounds {
		tags := map[string]string{resource.ServiceTag: "backend"}
		for j := range 30 {
			tags[fmt.Sprintf("t%02d", j)] = strings.Repeat("v", 250)
		}
		n.Inbound = append(n.Inbound, &v1alpha1.Dataplane_Networking_Inbound{Port: uint32(i + 1), Tags: tags})
	}
	return r
}

// Both limits a resource can run into, etcd's (about 1.5 MiB per value)
// and the API server's (3 MiB per request body), come back as IsTooLarge
// naming the resource.
func tooLarge(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "limits"})
	for _, tc := range []struct {
		name     string
		inbounds int
	}{{"over etcd's value limit", 250}, {"over the API server's request limit", 500}} {
		t.Run(tc.name, func(t *testing.T) {
			r := big("big", tc.inbounds)
			_, err := s.Create(ctx, r)
			if !store.IsTooLarge(err) {
				t.Fatalf("Create: got %v, want too large", err)
			}
			if tl := store.TooLargeErrors(err); len(tl) != 1 || tl[0].Key != r.Key() || tl[0].Size < 1<<20 {
				t.Errorf("TooLargeErrors: %v, want one naming %s with its size", tl, r.Key())
			}
			small := storetest.Dataplane("default", "small-"+fmt.Sprint(tc.inbounds), 1)
			err = s.Apply(ctx, []store.Op{{Put: r}, {Put: small}})
			if tl := store.TooLargeErrors(err); len(tl) != 1 || tl[0].Key != r.Key() {
				t.Fatalf("Apply: got %v, want too large naming %s", err, r.Key())
			}
			if _, err := s.Get(ctx, small.Key()); err != nil {
				t.Errorf("the Apply's other put: %v", err)
			}
			if _, err := s.Get(ctx, r.Key()); !store.IsNotFound(err) {
				t.Errorf("the too large put: Get = %v, want not found", err)
			}
		})
	}
}
