package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// mesh is a mesh's VIP records as a store would hold them after Plan's
// writes: Plan is run and its ops applied, as the global does.
type mesh struct {
	t       *testing.T
	records map[string]*resource.Resource
	cidr6   netip.Prefix
	written int // records put or deleted so far
}

func newMesh(t *testing.T, rs ...*resource.Resource) *mesh {
	m := &mesh{t: t, records: map[string]*resource.Resource{}}
	for _, r := range rs {
		m.records[r.Meta.Name] = r
	}
	return m
}

func (m *mesh) list() []*resource.Resource {
	out := make([]*resource.Resource, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Name < out[j].Meta.Name })
	return out
}

// plan runs Plan at now and applies its ops; it returns them.
func (m *mesh) plan(offered []string, now time.Time, cooldown time.Duration) []store.Op {
	m.t.Helper()
	set := map[string]bool{}
	for _, s := range offered {
		set[s] = true
	}
	ops, err := Plan(m.list(), "default", set, cidr, m.cidr6, now, cooldown)
	if err != nil {
		m.t.Fatal(err)
	}
	for _, op := range ops {
		if op.Put != nil {
			if err := resource.Validate(op.Put); err != nil {
				m.t.Fatalf("Plan put an invalid record: %v", err)
			}
			m.records[op.Put.Meta.Name] = op.Put
		} else {
			delete(m.records, op.Delete.Name)
		}
	}
	m.written += len(ops)
	return ops
}

// entries returns the mesh's entries by service, checking that no VIP is
// held twice.
func (m *mesh) entries() map[string]*v1alpha1.VIPTable_Entry {
	m.t.Helper()
	out := map[string]*v1alpha1.VIPTable_Entry{}
	holder := map[string]string{}
	for _, e := range Entries(m.list()) {
		out[e.GetService()] = e
		for _, a := range []string{e.GetVip(), e.GetVip6()} {
			if h, dup := holder[a]; a != "" && dup {
				m.t.Fatalf("VIP %s held by %s and %s", a, h, e.GetService())
			}
			holder[a] = e.GetService()
		}
	}
	return out
}

func legacyTable(entries ...*v1alpha1.VIPTable_Entry) *resource.Resource {
	return &resource.Resource{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "default", Name: resource.VIPTableName},
		Spec: &v1alpha1.VIPTable{Entries: entries}}
}

// A new service costs one record; an unchanged reconcile writes nothing;
// a service gone keeps its VIP through the cool-down, gets it back if it
// returns, and loses its record after.
func TestPlanWritesOnlyTheRecordsThatChange(t *testing.T) {
	m := newMesh(t)
	now, cool := time.Now(), time.Hour
	if ops := m.plan([]string{"backend", "web"}, now, cool); len(ops) != 2 || len(m.records) != 2 {
		t.Fatalf("two services: %d ops, %d records, want 2 and 2", len(ops), len(m.records))
	}
	backend := m.entries()["backend"].GetVip()
	if ops := m.plan([]string{"backend", "web"}, now.Add(time.Minute), cool); len(ops) != 0 {
		t.Fatalf("an unchanged reconcile wrote %d records", len(ops))
	}
	ops := m.plan([]string{"backend", "web", "api"}, now, cool)
	if len(ops) != 1 || ops[0].Put == nil || ops[0].Put.Meta.Name != resource.VIPRecordName("api") {
		t.Fatalf("a new service: ops %v, want one put of api's record", ops)
	}
	if m.entries()["backend"].GetVip() != backend {
		t.Fatalf("backend's VIP moved")
	}

	ops = m.plan([]string{"web", "api"}, now.Add(time.Minute), cool)
	if e := m.entries()["backend"]; len(ops) != 1 || e.GetVip() != backend || e.GetUnusedSince() == nil {
		t.Fatalf("backend gone: ops %v, entry %v; want one write marking it unused, its VIP kept", ops, e)
	}
	// Within the cool-down nobody else gets backend's VIP, even one whose
	// proposal it is.
	m.plan([]string{"web", "api", "backend"}, now.Add(30*time.Minute), cool)
	if e := m.entries()["backend"]; e.GetVip() != backend || e.GetUnusedSince() != nil {
		t.Fatalf("backend back within the cool-down: %v, want %s in use", e, backend)
	}
	m.plan([]string{"web", "api"}, now.Add(31*time.Minute), cool)
	ops = m.plan([]string{"web", "api"}, now.Add(2*time.Hour), cool)
	if len(ops) != 1 || ops[0].Put != nil || ops[0].Delete.Name != resource.VIPRecordName("backend") {
		t.Fatalf("after the cool-down: ops %v, want backend's record deleted", ops)
	}
	if _, has := m.entries()["backend"]; has || len(m.records) != 2 {
		t.Fatalf("backend not released: %v", m.records)
	}
}

// A VIP released and given to another service in the same plan is deleted
// before it is put again, so no two records ever hold it.
func TestPlanDeletesReleasedRecordsBeforePuts(t *testing.T) {
	small := netip.MustParsePrefix("10.0.0.0/30") // two addresses
	m := newMesh(t)
	set := func(ss ...string) map[string]bool {
		out := map[string]bool{}
		for _, s := range ss {
			out[s] = true
		}
		return out
	}
	now := time.Now()
	for _, offered := range []map[string]bool{set("a", "b"), set("b")} {
		ops, err := Plan(m.list(), "default", offered, small, netip.Prefix{}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.Put != nil {
				m.records[op.Put.Meta.Name] = op.Put
			} else {
				delete(m.records, op.Delete.Name)
			}
		}
	}
	ops, err := Plan(m.list(), "default", set("b", "c"), small, netip.Prefix{}, now.Add(time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Put != nil || ops[0].Delete.Name != resource.VIPRecordName("a") || ops[1].Put == nil {
		t.Fatalf("ops %v, want a's record deleted, then c's put", ops)
	}
}

func TestPlanGivesIPv6VIPsAndKeepsThem(t *testing.T) {
	m := newMesh(t)
	m.cidr6 = netip.MustParsePrefix("fd00:a7::/64")
	m.plan([]string{"backend"}, time.Now(), time.Hour)
	a6, err := netip.ParseAddr(m.entries()["backend"].GetVip6())
	if err != nil || !m.cidr6.Contains(a6) {
		t.Fatalf("backend's IPv6 VIP %q not in %s", m.entries()["backend"].GetVip6(), m.cidr6)
	}
	if ops := m.plan([]string{"backend"}, time.Now(), time.Hour); len(ops) != 0 {
		t.Fatalf("IPv6 VIP not stable: %v", ops)
	}
}

// A service whose DNS name another holds gets no record.
func TestPlanGivesNoVIPToAServiceThatLostItsName(t *testing.T) {
	m := newMesh(t)
	m.plan([]string{"backend"}, time.Now(), time.Hour)
	m.plan([]string{"backend", "Backend"}, time.Now(), time.Hour)
	if _, has := m.entries()["Backend"]; has || len(m.records) != 1 {
		t.Fatalf("Backend got a VIP though backend holds its name: %v", m.entries())
	}
}

// Records that disagree (two replicas that wrote without a fence, or a
// legacy table beside records) are settled: the first holder of a VIP
// keeps it, the other gets a new one.
func TestPlanGivesADuplicatedVIPToOneService(t *testing.T) {
	dup := "240.0.0.7"
	m := newMesh(t,
		Record("default", &v1alpha1.VIPTable_Entry{Service: "a", Vip: dup}),
		Record("default", &v1alpha1.VIPTable_Entry{Service: "b", Vip: dup}))
	m.plan([]string{"a", "b"}, time.Now(), time.Hour)
	e := m.entries()
	if e["a"].GetVip() != dup || e["b"].GetVip() == dup || e["b"].GetVip() == "" {
		t.Fatalf("a %v, b %v: want a to keep %s and b to get another", e["a"], e["b"], dup)
	}
}

// A legacy table, as allocators before per-service records wrote it, is
// split into records keeping every VIP, IPv6 VIP and unused_since, then
// deleted; nothing else is planned until it is gone.
func TestPlanMigratesALegacyTable(t *testing.T) {
	since := timestamppb.New(time.Now().Add(-10 * time.Minute).Truncate(time.Second))
	var entries []*v1alpha1.VIPTable_Entry
	for i := range 20 {
		entries = append(entries, &v1alpha1.VIPTable_Entry{Service: fmt.Sprintf("svc-%02d", i), Vip: fmt.Sprintf("240.0.0.%d", 10+i), Vip6: fmt.Sprintf("fd00:a7::%x", 10+i)})
	}
	entries[3].UnusedSince = since
	m := newMesh(t, legacyTable(entries...))
	m.cidr6 = netip.MustParsePrefix("fd00:a7::/64")
	// Offered now: svc-00..svc-18 (svc-19 went away since) and a newcomer.
	offered := []string{"newcomer"}
	for i := range 19 {
		offered = append(offered, fmt.Sprintf("svc-%02d", i))
	}
	ops := m.plan(offered, time.Now(), time.Hour)
	if len(ops) != 21 || ops[20].Put != nil || ops[20].Delete.Name != resource.VIPTableName {
		t.Fatalf("migration: %d ops (last %v), want 20 puts then the legacy table's delete", len(ops), ops[len(ops)-1])
	}
	got := m.entries()
	if len(got) != 20 {
		t.Fatalf("after migration %d services, want the 20 of the table", len(got))
	}
	for _, want := range entries {
		e := got[want.GetService()]
		if e.GetVip() != want.GetVip() || e.GetVip6() != want.GetVip6() || !e.GetUnusedSince().AsTime().Equal(want.GetUnusedSince().AsTime()) ||
			(e.GetUnusedSince() == nil) != (want.GetUnusedSince() == nil) {
			t.Errorf("%s after migration: %v, want %v", want.GetService(), e, want)
		}
	}
	// Then the ordinary reconcile: svc-03 back in use, svc-19 unused, the
	// newcomer added; every other record untouched.
	ops = m.plan(offered, time.Now(), time.Hour)
	if len(ops) != 3 {
		t.Fatalf("after migration: %d writes %v, want 3", len(ops), ops)
	}
	if got := m.entries(); got["svc-03"].GetVip() != "240.0.0.13" || got["svc-03"].GetUnusedSince() != nil || got["svc-19"].GetUnusedSince() == nil || got["newcomer"].GetVip() == "" {
		t.Fatalf("after migration and reconcile: %v", got)
	}
}

// A service with its own record keeps it over its legacy entry, and a
// legacy entry whose VIP a record holds is not copied (its service gets
// a new VIP).
func TestPlanMigrationKeepsServicesOwnRecords(t *testing.T) {
	m := newMesh(t,
		Record("default", &v1alpha1.VIPTable_Entry{Service: "a", Vip: "240.0.0.1"}),
		legacyTable(&v1alpha1.VIPTable_Entry{Service: "a", Vip: "240.0.0.9"},
			&v1alpha1.VIPTable_Entry{Service: "b", Vip: "240.0.0.1"},
			&v1alpha1.VIPTable_Entry{Service: "c", Vip: "240.0.0.3"}))
	m.plan([]string{"a", "b", "c"}, time.Now(), time.Hour)
	if e := m.entries(); e["b"] != nil {
		t.Fatalf("migration copied b's entry, whose VIP a's record holds: %v", e["b"])
	}
	m.plan([]string{"a", "b", "c"}, time.Now(), time.Hour)
	e := m.entries()
	if e["a"].GetVip() != "240.0.0.1" || e["c"].GetVip() != "240.0.0.3" || e["b"].GetVip() == "" || e["b"].GetVip() == "240.0.0.1" {
		t.Fatalf("after migration: %v", e)
	}
	if _, legacy := m.records[resource.VIPTableName]; legacy {
		t.Fatalf("the legacy table is still there")
	}
}

// A full range does not stop releases: services gone are marked unused and
// released, and the newcomer gets a VIP once one is free.
func TestPlanWithAFullRangeStillReleases(t *testing.T) {
	small := netip.MustParsePrefix("10.0.0.0/30") // two addresses
	m := newMesh(t)
	plan := func(now time.Time, offered ...string) error {
		set := map[string]bool{}
		for _, s := range offered {
			set[s] = true
		}
		ops, err := Plan(m.list(), "default", set, small, netip.Prefix{}, now, 0)
		for _, op := range ops {
			if op.Put != nil {
				m.records[op.Put.Meta.Name] = op.Put
			} else {
				delete(m.records, op.Delete.Name)
			}
		}
		return err
	}
	now := time.Now()
	if err := plan(now, "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := plan(now.Add(time.Second), "c"); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("c with the range full: %v, want ErrFull naming c", err)
	}
	if e := m.entries(); e["a"].GetUnusedSince() == nil || e["b"].GetUnusedSince() == nil {
		t.Fatalf("a and b not marked unused while the range was full: %v", e)
	}
	if err := plan(now.Add(2*time.Second), "c"); err != nil {
		t.Fatalf("after a and b were released: %v", err)
	}
	if e := m.entries(); len(e) != 1 || e["c"].GetVip() == "" {
		t.Fatalf("after the release: %v, want only c, with a VIP", e)
	}
}
