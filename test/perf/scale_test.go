package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

// syntheticZone is a zone without a store: its Dataplanes live in a map,
// so a benchmark can put 5,000 in each of ten zones in seconds.
type syntheticZone struct {
	mu  sync.Mutex
	dps map[string]*v1alpha1.WireResource
}

func (z *syntheticZone) Desired(_ context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if t == resource.DataplaneType {
		return maps.Clone(z.dps), nil
	}
	return map[string]*v1alpha1.WireResource{}, nil
}

func (z *syntheticZone) Held(context.Context, resource.Type) (map[string]string, error) {
	return map[string]string{}, nil
}

func (z *syntheticZone) Apply(context.Context, resource.Type, []*v1alpha1.WireResource, []string) (map[string]string, error) {
	return nil, nil
}

func (z *syntheticZone) set(tb testing.TB, i int, port uint32) {
	name := fmt.Sprintf("dp-%d", i)
	w, err := kds.ToWire(realisticDataplane(i, port), name)
	if err != nil {
		tb.Fatal(err)
	}
	z.mu.Lock()
	z.dps[kds.WireKey("default", name)] = w
	z.mu.Unlock()
}

func zoneDataplanes(url, zone string) int {
	resp, err := client.Get(url + "/zones/" + zone)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Dataplanes int `json:"dataplanes"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Dataplanes
}
