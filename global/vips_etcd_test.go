package global

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/vip"
)

const testEtcdPrefix = "/atoll/"

// replicaStore is one global replica's store on a shared etcd, laid out
// as global.Run lays it out.
func replicaStore(client *clientv3.Client) *etcdstore.Store {
	st := etcdstore.New(client, testEtcdPrefix+"resources/")
	st.FencePrefix = testEtcdPrefix + "kds-fences/"
	return st
}

// startAllocator runs one replica's VIP allocator, with its own cache,
// until the test ends.
func startAllocator(t *testing.T, ctx context.Context, st store.Store, cidr netip.Prefix, cooldown time.Duration) {
	t.Helper()
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.VIPTableType)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := newVIPAllocator(st, cache, cidr, cooldown, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { <-done })
}

// slowWrites delays each write of a replica by up to max, as a slow
// network or a paused process would: a write may land after the other
// replica read and wrote.
type slowWrites struct {
	*etcdstore.Store
	max time.Duration
}

func (s slowWrites) pause(ctx context.Context) {
	select {
	case <-time.After(rand.N(s.max)):
	case <-ctx.Done():
	}
}

func (s slowWrites) Apply(ctx context.Context, ops []store.Op) error {
	s.pause(ctx)
	return s.Store.Apply(ctx, ops)
}

func (s slowWrites) Fence(ctx context.Context, name string) (store.Fence, error) {
	f, err := s.Store.Fence(ctx, name)
	return slowFence{f, s}, err
}

type slowFence struct {
	store.Fence
	s slowWrites
}

func (f slowFence) Apply(ctx context.Context, ops []store.Op) error {
	f.s.pause(ctx)
	return f.Fence.Apply(ctx, ops)
}

// vipHistory replays every change of VIP records in etcd and checks each
// state the store went through: check is called at every revision, with
// the mesh's entries, and returns what is wrong ("" when nothing is).
type vipHistory struct {
	mu        sync.Mutex
	records   map[resource.Key]*resource.Resource
	problems  []string
	revisions int
	done      chan struct{}
}

func followVIPs(t *testing.T, ctx context.Context, st store.Store, check func(mesh string, entries []*v1alpha1.VIPTable_Entry) string) *vipHistory {
	t.Helper()
	ch, err := st.Watch(ctx, resource.VIPTableType)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := st.List(ctx, resource.VIPTableType, "")
	if err != nil {
		t.Fatal(err)
	}
	h := &vipHistory{records: map[resource.Key]*resource.Resource{}, done: make(chan struct{})}
	for _, r := range initial {
		h.records[r.Key()] = r
	}
	h.check(check)
	go func() {
		defer close(h.done)
		rev := ""
		for ev := range ch {
			if ev.Resource.Meta.Version != rev && rev != "" {
				h.check(check) // every event of the last revision is in
			}
			rev = ev.Resource.Meta.Version
			h.mu.Lock()
			if ev.Kind == store.Deleted {
				delete(h.records, ev.Resource.Key())
			} else {
				h.records[ev.Resource.Key()] = ev.Resource
			}
			h.mu.Unlock()
		}
		h.check(check)
	}()
	return h
}

func (h *vipHistory) check(check func(mesh string, entries []*v1alpha1.VIPTable_Entry) string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revisions++
	byMesh := map[string][]*resource.Resource{}
	for _, r := range h.records {
		byMesh[r.Meta.Mesh] = append(byMesh[r.Meta.Mesh], r)
	}
	for mesh, rs := range byMesh {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Meta.Name < rs[j].Meta.Name })
		if p := check(mesh, vip.Entries(rs)); p != "" && len(h.problems) < 20 {
			h.problems = append(h.problems, fmt.Sprintf("state %d: mesh %s: %s", h.revisions, mesh, p))
		}
	}
}

// stop ends the watch (cancel its context first) and returns what was
// wrong in any state.
func (h *vipHistory) stop() (problems []string, revisions int) {
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.problems, h.revisions
}

// noVIPTwice reports a VIP held by two services of a mesh.
func noVIPTwice(_ string, entries []*v1alpha1.VIPTable_Entry) string {
	holder := map[string]string{}
	for _, e := range entries {
		for _, a := range []string{e.GetVip(), e.GetVip6()} {
			if h, dup := holder[a]; a != "" && dup {
				return fmt.Sprintf("VIP %s held by %s and %s", a, h, e.GetService())
			}
			holder[a] = e.GetService()
		}
	}
	return ""
}

func waitUntil(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two global replicas on one etcd, each with its own cache (so each sees
// zones' offers at its own moment) and writes that may land late,
// reconcile the same offers while zones add and withdraw services, in a
// range small enough that proposals collide and released VIPs are reused
// at once. In no state etcd went
// through does a VIP belong to two services, and in the end every offered
// service has one.
func TestTwoAllocatorsOnOneEtcdNeverAssignAVIPTwice(t *testing.T) {
	srv, client := etcdtest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	zones := replicaStore(client) // what KDS writes
	if err := store.EnsureMesh(ctx, zones, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	history := followVIPs(t, ctx, zones, noVIPTwice)
	cidr := netip.MustParsePrefix("10.0.0.0/27") // 30 addresses
	for range 2 {
		other, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.ClientEndpoint()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		startAllocator(t, ctx, slowWrites{replicaStore(other), 60 * time.Millisecond}, cidr, 0)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"zone-a", "zone-b", "zone-c"}
	offers := map[string][]string{}
	versions := map[string]string{}
	next := 0
	publish := func(zone string) {
		t.Helper()
		r := offering(zone, map[string][]string{resource.DefaultMesh: offers[zone]})
		var err error
		var out *resource.Resource
		if v := versions[zone]; v == "" {
			out, err = zones.Create(ctx, r)
		} else {
			r.Meta.Version = v
			out, err = zones.Update(ctx, r)
		}
		if err != nil {
			t.Fatal(err)
		}
		versions[zone] = out.Meta.Version
	}
	const rounds = 200
	for round := range rounds {
		zone := names[rng.IntN(len(names))]
		for range 1 + rng.IntN(3) { // services added, not in name order
			offers[zone] = append(offers[zone], fmt.Sprintf("svc-%03d-%04d", next%7, rng.IntN(10000)))
			next++
		}
		for len(offers[zone]) > 8 { // and some withdrawn: their VIPs come free
			i := rng.IntN(len(offers[zone]))
			offers[zone] = slices.Delete(offers[zone], i, i+1)
		}
		publish(zone)
		select {
		case <-time.After(time.Duration(rng.IntN(80)) * time.Millisecond):
		case <-ctx.Done():
		}
		if round == rounds/2 {
			t.Logf("round %d: %d services offered", round, len(offers["zone-a"])+len(offers["zone-b"])+len(offers["zone-c"]))
		}
	}

	want := map[string]bool{}
	for _, ss := range offers {
		for _, s := range ss {
			want[s] = true
		}
	}
	waitUntil(t, "every offered service has one VIP, the others none", func() string {
		records, err := zones.List(ctx, resource.VIPTableType, resource.DefaultMesh)
		if err != nil {
			return err.Error()
		}
		entries := vip.Entries(records)
		got := map[string]bool{}
		for _, e := range entries {
			if e.GetUnusedSince() == nil {
				got[e.GetService()] = true
			}
		}
		if len(entries) != len(want) || len(got) != len(want) {
			return fmt.Sprintf("%d entries, %d in use, want %d", len(entries), len(got), len(want))
		}
		for s := range want {
			if !got[s] {
				return s + " has no VIP"
			}
		}
		return noVIPTwice("", entries)
	})
	cancel()
	problems, revisions := history.stop()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d services added over %d rounds; %d states of the VIP records checked", next, rounds, revisions)
	if revisions < rounds/3 {
		t.Errorf("only %d states seen: the history did not follow the allocators", revisions)
	}
}

// A mesh's VIPTable "vips", written as allocators before per-service
// records wrote it, is split on start: afterwards every service has its
// VIP, IPv6 VIP and unused_since in its own record, "vips" is gone,
// nothing else in etcd changed, and no state in between left a service
// without its VIP.
func TestTheAllocatorMigratesALegacyTable(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := replicaStore(client)
	legacy := map[string][]*v1alpha1.VIPTable_Entry{}
	since := timestamppb.New(time.Now().Add(-5 * time.Minute).Truncate(time.Second))
	offered := map[string][]string{}
	for m, n := range map[string]int{resource.DefaultMesh: 300, "payments": 3} {
		if err := store.EnsureMesh(ctx, st, m, resource.OriginGlobal); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			e := &v1alpha1.VIPTable_Entry{Service: fmt.Sprintf("svc-%03d", i), Vip: fmt.Sprintf("240.%d.%d.%d", len(m), i/100, 10+i%100), Vip6: fmt.Sprintf("fd00:a7::%d:%x", len(m), 10+i)}
			if i == 1 {
				e.UnusedSince = since // cooling down: not offered
			} else {
				offered[m] = append(offered[m], e.GetService())
			}
			legacy[m] = append(legacy[m], e)
		}
		// As the allocator before per-service records stored it.
		if _, err := st.Create(ctx, &resource.Resource{
			Meta: resource.Meta{Type: resource.VIPTableType, Mesh: m, Name: resource.VIPTableName,
				Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
			Spec: &v1alpha1.VIPTable{Entries: legacy[m]},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, offering("zone-1", offered)); err != nil {
		t.Fatal(err)
	}
	before := etcdContents(t, client)

	// In every state: each service of the legacy tables has exactly its
	// VIPs and unused_since.
	keeps := func(mesh string, entries []*v1alpha1.VIPTable_Entry) string {
		got := map[string]*v1alpha1.VIPTable_Entry{}
		for _, e := range entries {
			got[e.GetService()] = e
		}
		if len(got) != len(legacy[mesh]) {
			return fmt.Sprintf("%d services, want the legacy table's %d", len(got), len(legacy[mesh]))
		}
		for _, want := range legacy[mesh] {
			if e := got[want.GetService()]; !proto.Equal(e, want) {
				return fmt.Sprintf("%s is %v, want %v", want.GetService(), e, want)
			}
		}
		return ""
	}
	history := followVIPs(t, ctx, st, keeps)
	startAllocator(t, ctx, st, netip.MustParsePrefix(vip.DefaultCIDR), time.Hour)
	waitUntil(t, "both legacy tables migrated", func() string {
		records, err := st.List(ctx, resource.VIPTableType, "")
		if err != nil {
			return err.Error()
		}
		for _, r := range records {
			if r.Meta.Name == resource.VIPTableName {
				return "mesh " + r.Meta.Mesh + " still has its legacy table"
			}
		}
		if len(records) != len(legacy[resource.DefaultMesh])+len(legacy["payments"]) {
			return fmt.Sprintf("%d records", len(records))
		}
		return ""
	})
	// The reconcile after the migration has nothing to change: give it
	// time to run before looking.
	time.Sleep(300 * time.Millisecond)
	cancel()
	problems, _ := history.stop()
	for _, p := range problems {
		t.Error(p)
	}

	after := etcdContents(t, client)
	records, err := st.List(context.Background(), resource.VIPTableType, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := resource.Validate(r); err != nil || r.Meta.Labels[resource.OriginLabel] != resource.OriginGlobal {
			t.Errorf("record %s: %v, labels %v", r.Key(), err, r.Meta.Labels)
		}
	}
	for mesh := range legacy {
		var rs []*resource.Resource
		for _, r := range records {
			if r.Meta.Mesh == mesh {
				rs = append(rs, r)
			}
		}
		if msg := keeps(mesh, vip.Entries(rs)); msg != "" {
			t.Errorf("after migration: mesh %s: %s", mesh, msg)
		}
	}
	vipPrefix := testEtcdPrefix + "resources/" + store.ListPrefix(resource.VIPTableType, "")
	for k, v := range before {
		if len(k) >= len(vipPrefix) && k[:len(vipPrefix)] == vipPrefix {
			continue
		}
		if after[k] != v {
			t.Errorf("%s changed", k)
		}
	}
	for k := range after {
		if _, had := before[k]; !had && !(len(k) >= len(vipPrefix) && k[:len(vipPrefix)] == vipPrefix) && !isFenceKey(k) {
			t.Errorf("%s was added", k)
		}
	}
}

func isFenceKey(k string) bool {
	p := testEtcdPrefix + "kds-fences/vip-allocator/"
	return len(k) >= len(p) && k[:len(p)] == p
}

// etcdContents is every key and value in etcd.
func etcdContents(t *testing.T, client *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := client.Get(context.Background(), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}
