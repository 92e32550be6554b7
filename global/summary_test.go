package global

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/kds"
)

// service is one (mesh, service, port) a zone offers with n instances.
type service struct {
	mesh, name string
	port, n    uint32
}

var ingressNet = &v1alpha1.ZoneIngress_Networking{Address: "10.0.0.1", Port: 10001, AdvertisedAddress: "192.0.2.1", AdvertisedPort: 10001}

// summaryRecord is a ZoneIngress named name for zone, offering svcs, as a
// zone sends it.
func summaryRecord(t testing.TB, name, zone string, svcs ...service) *v1alpha1.WireResource {
	t.Helper()
	zi := &v1alpha1.ZoneIngress{Zone: zone, Networking: ingressNet}
	for _, s := range svcs {
		zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
			Mesh: s.mesh, Tags: map[string]string{resource.ServiceTag: s.name}, Port: s.port, Instances: s.n})
	}
	w, err := kds.ToWire(&resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: name}, Spec: zi}, name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// serviceRecord is zone's per-service record of s.
func serviceRecord(t testing.TB, zone string, s service) *v1alpha1.WireResource {
	return summaryRecord(t, serviceName(zone, s), zone, s)
}

func serviceName(zone string, s service) string {
	return resource.ZoneServiceName(zone, s.mesh, map[string]string{resource.ServiceTag: s.name}, s.port)
}

func storedIngresses(t testing.TB, st store.Store) map[string]*resource.Resource {
	t.Helper()
	items, err := st.List(context.Background(), resource.ZoneIngressType, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*resource.Resource{}
	for _, r := range items {
		out[r.Meta.Name] = r
	}
	return out
}

// A zone's service summary arrives one record per service: the global
// stores each as the zone's, lists them back by the zone's names, and
// relays every record to the other zones under those names.
func TestAZonesSummaryIsKeptAndRelayedPerService(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	web, api := service{"default", "web", 8080, 2}, service{"default", "api", 9000, 1}
	z1 := endpointFor(t, st, "zone-1", 0)
	push := []*v1alpha1.WireResource{summaryRecord(t, "zone-1", "zone-1"), serviceRecord(t, "zone-1", web), serviceRecord(t, "zone-1", api)}
	if refused, err := z1.Apply(ctx, resource.ZoneIngressType, push, nil); err != nil || len(refused) != 0 {
		t.Fatalf("zone-1's summary: refused %v, err %v", refused, err)
	}
	stored := storedIngresses(t, st)
	wantStored := []string{StoredName(serviceName("zone-1", api), "zone-1"), StoredName(serviceName("zone-1", web), "zone-1"), "zone-1"}
	slices.Sort(wantStored)
	if got := slices.Sorted(maps.Keys(stored)); !slices.Equal(got, wantStored) {
		t.Fatalf("stored %v, want %v", got, wantStored)
	}
	for name, r := range stored {
		if r.Meta.Labels[resource.ZoneLabel] != "zone-1" || r.Meta.Labels[resource.OriginLabel] != resource.OriginZone {
			t.Errorf("%s is stored with labels %v, want zone-1's", name, r.Meta.Labels)
		}
	}

	wantKeys := []string{kds.WireKey("", "zone-1"), kds.WireKey("", serviceName("zone-1", web)), kds.WireKey("", serviceName("zone-1", api))}
	slices.Sort(wantKeys)
	again := endpointFor(t, st, "zone-1", 0)
	held, err := again.Held(ctx, resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(held)); !slices.Equal(got, wantKeys) {
		t.Errorf("zone-1 holds %v, want %v", got, wantKeys)
	}

	// Another zone gets every record, under zone-1's names; zone-1 none.
	z2 := endpointFor(t, st, "zone-2", 0)
	waitForCache(t, z2, 3)
	desired, err := z2.Desired(ctx, resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(desired)); !slices.Equal(got, wantKeys) {
		t.Fatalf("zone-2 is sent %v, want %v", got, wantKeys)
	}
	for i, w := range push {
		key := kds.WireKey("", w.GetName())
		r, err := kds.FromWire(resource.ZoneIngressType, desired[key])
		if err != nil {
			t.Fatal(err)
		}
		sent, _ := kds.FromWire(resource.ZoneIngressType, push[i])
		if r.Meta.Name != w.GetName() || !proto.Equal(r.Spec, sent.Spec) {
			t.Errorf("%s is relayed as %s %v, want it as zone-1 sent it", key, r.Meta.Name, r.Spec)
		}
		if err := resource.Validate(r); err != nil {
			t.Errorf("%s is relayed invalid: %v", key, err)
		}
	}
	if own, err := z1.Desired(ctx, resource.ZoneIngressType); err != nil || len(own) != 0 {
		t.Errorf("zone-1 is sent back %d of its own records (%v)", len(own), err)
	}

	// A service gone is one removal; the others stay.
	if refused, err := again.Apply(ctx, resource.ZoneIngressType, nil, []string{kds.WireKey("", serviceName("zone-1", api))}); err != nil || len(refused) != 0 {
		t.Fatalf("removing api: refused %v, err %v", refused, err)
	}
	if _, ok := storedIngresses(t, st)[StoredName(serviceName("zone-1", api), "zone-1")]; ok {
		t.Error("api's record is still stored after zone-1 removed it")
	}
	if n := len(storedIngresses(t, st)); n != 2 {
		t.Errorf("%d records stored, want zone-1's own and web's", n)
	}

	// Deleting the zone removes all of its records.
	z := newZoneSync(st, z1.cache, "test", 0, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	z.drain(ctx, "zone-1")
	if left := storedIngresses(t, st); len(left) != 0 {
		t.Errorf("after zone-1 was deleted the global holds %v", slices.Sorted(maps.Keys(left)))
	}
}

func waitForCache(t testing.TB, e *zoneEndpoint, n int) {
	t.Helper()
	for range 1000 {
		if len(e.cache.List(resource.ZoneIngressType, "")) >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the cache never held %d ZoneIngresses", n)
}

// What a zone may not send of its summary is refused with the reason,
// and nothing of it is stored.
func TestAZoneSendsOnlyItsOwnSummaryRecords(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	web, api := service{"default", "web", 8080, 2}, service{"default", "api", 9000, 1}
	z1 := endpointFor(t, st, "zone-1", 0)
	cases := []struct {
		name string
		w    *v1alpha1.WireResource
		why  string
	}{
		{"another zone's record", serviceRecord(t, "zone-2", api), `zone "zone-1" may only send its own`},
		{"another zone's own record", summaryRecord(t, "zone-2", "zone-2", api), `zone "zone-1" may only send its own`},
		{"another zone's name for this zone's service", summaryRecord(t, serviceName("zone-2", api), "zone-1", api), "name it " + `"` + serviceName("zone-1", api) + `"`},
		{"a name not matching its service", summaryRecord(t, serviceName("zone-1", api), "zone-1", web), "name it " + `"` + serviceName("zone-1", web) + `"`},
		{"two services in a per-service record", summaryRecord(t, serviceName("zone-1", web), "zone-1", web, api), "offers 2"},
		{"a mesh the global does not have", serviceRecord(t, "zone-1", service{"ghost", "db", 5432, 1}), `mesh "ghost"`},
		{"named after nothing", summaryRecord(t, "zone-1-ingress", "zone-1", web), "name it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			refused, err := z1.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{c.w}, nil)
			if err != nil {
				t.Fatal(err)
			}
			key := kds.WireKey("", c.w.GetName())
			if got, ok := refused[key]; !ok || !strings.Contains(got, c.why) {
				t.Errorf("refused %v, want %s refused saying %q", refused, key, c.why)
			}
		})
	}
	if left := storedIngresses(t, st); len(left) != 0 {
		t.Errorf("stored %v, want nothing", slices.Sorted(maps.Keys(left)))
	}
}

// A zone's records count against its cap, the zone's own record too.
func TestAZonesSummaryRecordsCountAgainstItsCap(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	z1 := endpointFor(t, etcdstore.New(client, "/test/"), "zone-1", 3)
	push := []*v1alpha1.WireResource{summaryRecord(t, "zone-1", "zone-1")}
	for _, s := range []string{"a", "b", "c"} {
		push = append(push, serviceRecord(t, "zone-1", service{"default", s, 80, 1}))
	}
	refused, err := z1.Apply(ctx, resource.ZoneIngressType, push, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || !strings.Contains(refused[kds.WireKey("", push[3].GetName())], "--max-resources-per-zone") {
		t.Errorf("refused %v, want c's record refused at the cap of 3", refused)
	}
}

// A legacy summary (the zone's own record listing every service, as an
// older zone sends it and an older global stored it) stays valid, and is
// replaced when the zone sends the per-service format.
func TestALegacySummaryIsReplacedByThePerServiceFormat(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	web, api := service{"default", "web", 8080, 2}, service{"default", "api", 9000, 1}
	old := endpointFor(t, st, "zone-1", 0)
	if refused, err := old.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{summaryRecord(t, "zone-1", "zone-1", web, api)}, nil); err != nil || len(refused) != 0 {
		t.Fatalf("a legacy summary: refused %v, err %v", refused, err)
	}
	z2 := endpointFor(t, st, "zone-2", 0)
	waitForCache(t, z2, 1)
	if d, err := z2.Desired(ctx, resource.ZoneIngressType); err != nil || len(d[kds.WireKey("", "zone-1")].GetSpec()) == 0 {
		t.Fatalf("the legacy summary is not relayed: %v %v", d, err)
	}

	// The zone, upgraded, connects again and sends its summary anew.
	z1 := endpointFor(t, st, "zone-1", 0)
	held, err := z1.Held(ctx, resource.ZoneIngressType)
	if err != nil || len(held) != 1 {
		t.Fatalf("held %v (%v), want the legacy record", held, err)
	}
	push := []*v1alpha1.WireResource{serviceRecord(t, "zone-1", web), serviceRecord(t, "zone-1", api), summaryRecord(t, "zone-1", "zone-1")}
	if refused, err := z1.Apply(ctx, resource.ZoneIngressType, push, nil); err != nil || len(refused) != 0 {
		t.Fatalf("the per-service summary: refused %v, err %v", refused, err)
	}
	stored := storedIngresses(t, st)
	if n := len(stored["zone-1"].Spec.(*v1alpha1.ZoneIngress).GetAvailableServices()); n != 0 || len(stored) != 3 {
		t.Errorf("stored %v with %d services in zone-1's own record, want 3 records and none listed in it", slices.Sorted(maps.Keys(stored)), n)
	}
}

// 10,000 services of one zone: stored as 10,001 records, none of them
// large, relayed whole to another zone in pushes under the KDS message
// limit, and well within the zone's default cap.
func TestTenThousandServicesOfOneZone(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	st := etcdstore.New(client, "/test/")
	z1 := endpointFor(t, st, "zone-1", 0)
	const n = 10000
	push := []*v1alpha1.WireResource{summaryRecord(t, "zone-1", "zone-1")}
	for i := range n {
		push = append(push, serviceRecord(t, "zone-1", service{"default", fmt.Sprintf("service-%05d", i), 8080, 3}))
	}
	// As the zone's session sends them: in messages under the limit.
	sent := 0
	for _, msg := range inMessages(push, kds.DefaultMaxMessageSize) {
		refused, err := z1.Apply(ctx, resource.ZoneIngressType, msg, nil)
		if err != nil || len(refused) != 0 {
			t.Fatalf("pushing %d records: refused %d (%v), err %v", len(msg), len(refused), firstOf(refused), err)
		}
		sent++
	}
	largest := 0
	for _, r := range storedIngresses(t, st) {
		b, err := store.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, len(b))
	}
	if n, _ := z1.stored(ctx, resource.ZoneIngressType); n != 10001 || n > DefaultMaxResourcesPerZone {
		t.Errorf("zone-1 keeps %d resources, want 10,001 (its cap is %d)", n, DefaultMaxResourcesPerZone)
	}
	if largest > 512 {
		t.Errorf("the largest stored record is %d bytes: want each small", largest)
	}
	z2 := endpointFor(t, st, "zone-2", 0)
	waitForCache(t, z2, n+1)
	desired, err := z2.Desired(ctx, resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	if len(desired) != n+1 {
		t.Fatalf("zone-2 is sent %d records, want %d", len(desired), n+1)
	}
	relay := inMessages(slices.Collect(maps.Values(desired)), kds.DefaultMaxMessageSize)
	t.Logf("10,000 services: pushed to the global in %d messages, relayed in %d; largest stored record %d bytes", sent, len(relay), largest)
}

// inMessages splits ws into pushes each under limit bytes.
func inMessages(ws []*v1alpha1.WireResource, limit int) [][]*v1alpha1.WireResource {
	var out [][]*v1alpha1.WireResource
	var cur []*v1alpha1.WireResource
	size := 0
	for _, w := range ws {
		s := proto.Size(w) + 8
		if size+s > limit-1024 && len(cur) > 0 {
			out, cur, size = append(out, cur), nil, 0
		}
		cur, size = append(cur, w), size+s
	}
	return append(out, cur)
}

func firstOf(m map[string]string) string {
	for k, v := range m {
		return k + ": " + v
	}
	return ""
}
