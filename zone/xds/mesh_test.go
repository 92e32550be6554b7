package xds

import (
	"fmt"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// sameResources compares what a cache holds with what Generate makes.
// extra names the cache may hold beyond it (shared by the mesh's proxies).
func sameResources(t *testing.T, what string, got map[string]types.Resource, want []types.Resource, extra func(string) bool) {
	t.Helper()
	wantBy := map[string]types.Resource{}
	for _, r := range want {
		wantBy[cachev3.GetResourceName(r)] = r
	}
	for name, r := range wantBy {
		if got[name] == nil || !proto.Equal(expand(got[name]), expand(r)) {
			t.Errorf("%s %s: incremental %v, full %v", what, name, got[name], r)
		}
	}
	for name := range got {
		if _, ok := wantBy[name]; !ok && !extra(name) {
			t.Errorf("%s: incremental has %s, the full build does not", what, name)
		}
	}
}

func versioned(rs []*resource.Resource, v string) []*resource.Resource {
	for _, r := range rs {
		if r.Meta.Version == "" {
			r.Meta.Version = v
		}
	}
	return rs
}

// The incremental configuration equals a full build after every step.
func TestIncrementalMatchesFullBuild(t *testing.T) {
	// m serves both kinds of proxy from the start; late serves gRPC
	// clients from the second step and Envoys from the fifth, so it builds
	// their clusters and listeners from state updated without them.
	m := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
	late := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
	steps := 0
	check := func(step string, in Input) {
		t.Helper()
		steps++
		versioned(in.Dataplanes, "1")
		versioned(in.Ingresses, "1")
		versioned(in.Endpoints, "1")
		m.update(in)
		m.serve(Envoy, in.VIPs, in.ServiceAddresses)
		m.serve(Proxyless, in.VIPs, in.ServiceAddresses)
		late.update(in)
		if steps >= 2 {
			late.serve(Proxyless, in.VIPs, in.ServiceAddresses)
		}
		if steps >= 5 {
			late.serve(Envoy, in.VIPs, in.ServiceAddresses)
		}
		localhost := func(n string) bool { return strings.HasPrefix(n, "localhost:") }
		none := func(string) bool { return false }
		gw := generate(t, in, Envoy, "kong")
		pl := generate(t, in, Proxyless, "kong")
		for _, c := range []struct {
			name         string
			m            *meshConfig
			envoy, proxy bool
		}{{"", m, true, true}, {" (served late)", late, steps >= 5, steps >= 2}} {
			sameResources(t, step+c.name+": endpoints", c.m.eds.GetResources(), gw[resourcev3.EndpointType], none)
			if c.envoy {
				sameResources(t, step+c.name+": Envoy clusters", c.m.cdsEnvoy.GetResources(), gw[resourcev3.ClusterType], localhost)
				sameResources(t, step+c.name+": gateway listeners", c.m.gateway.GetResources(), gw[resourcev3.ListenerType], none)
			}
			if c.proxy {
				sameResources(t, step+c.name+": gRPC clusters", c.m.cdsProxyless.GetResources(), pl[resourcev3.ClusterType], none)
				sameResources(t, step+c.name+": gRPC listeners", c.m.proxyless.GetResources(), pl[resourcev3.ListenerType], none)
			}
		}
	}
	in := fixture(v1alpha1.Mesh_CrossZone_Ingress, true)
	check("ingress", in)

	in = withAddresses(v1alpha1.Mesh_CrossZone_Direct)
	check("switched to direct, Services' own addresses", in)

	// One remote endpoint goes: a new version of its ServiceEndpoints.
	se := in.Endpoints[0].Spec.(*v1alpha1.ServiceEndpoints)
	se.Endpoints = se.Endpoints[:1]
	in.Endpoints[0].Meta.Version = "2"
	check("a remote endpoint gone", in)

	// The local instance goes; a new service arrives with a VIP.
	in.Dataplanes = in.Dataplanes[:2]
	in.Dataplanes = append(in.Dataplanes, dp("api-1", "10.1.0.9", false, inb("api", 7000, 0, true)))
	in.VIPs["api"] = in.VIPs["web"]
	delete(in.VIPs, "web")
	check("local instance gone, api added, web's VIP moved", in)

	in = fixture(v1alpha1.Mesh_CrossZone_Ingress, false)
	check("back to ingress, no own addresses", in)
}

// BenchmarkMeshUpdate: a mesh with 1,000 services × 10 endpoints in
// another zone: building it whole, and updating it after one endpoint
// changed.
func BenchmarkMeshUpdate(b *testing.B) {
	in := bigInput()
	versioned(in.Dataplanes, "1")
	versioned(in.Endpoints, "1")
	for _, kind := range []struct {
		name string
		kind Kind
	}{{"envoy", Envoy}, {"proxyless", Proxyless}} {
		b.Run("full-"+kind.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := newMeshConfig("zone-1", "mesh", "default", "bench-", quietLogger{slogDiscard()})
				m.update(in)
				m.serve(kind.kind, in.VIPs, in.ServiceAddresses)
			}
		})
	}
	b.Run("one-endpoint", func(b *testing.B) {
		m := newMeshConfig("zone-1", "mesh", "default", "bench-", quietLogger{slogDiscard()})
		m.update(in)
		m.serve(Envoy, in.VIPs, in.ServiceAddresses)
		m.serve(Proxyless, in.VIPs, in.ServiceAddresses)
		ep := in.Endpoints[500].Spec.(*v1alpha1.ServiceEndpoints).Endpoints[3]
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			ep.Address = fmt.Sprintf("10.3.0.%d", i%2+1)
			in.Endpoints[500].Meta.Version = fmt.Sprint(i + 1)
			m.update(in)
		}
	})
}
