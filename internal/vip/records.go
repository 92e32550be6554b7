package vip

import (
	"errors"
	"net/netip"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// A mesh's VIP assignments are kept one VIPTable record per service, named
// resource.VIPRecordName (see resource/records.go). Data written before
// keeps every entry of a mesh in its legacy VIPTable named
// resource.VIPTableName: it stays readable (Entries) and the global splits
// it into records (Plan).

// Entries returns a mesh's VIP entries from its VIPTable records, legacy
// table and service records alike, one per service, sorted by service. A
// service's own record wins over its entry in the legacy table.
func Entries(records []*resource.Resource) []*v1alpha1.VIPTable_Entry {
	byService := map[string]*v1alpha1.VIPTable_Entry{}
	own := map[string]bool{}
	for _, r := range records {
		legacy := r.Meta.Name == resource.VIPTableName
		for _, e := range r.Spec.(*v1alpha1.VIPTable).GetEntries() {
			s := e.GetService()
			if legacy && own[s] {
				continue
			}
			byService[s] = e
			own[s] = own[s] || !legacy
		}
	}
	out := make([]*v1alpha1.VIPTable_Entry, 0, len(byService))
	for _, e := range byService {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetService() < out[j].GetService() })
	return out
}

// Record returns the VIP record of entry e in mesh.
func Record(mesh string, e *v1alpha1.VIPTable_Entry) *resource.Resource {
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.VIPTableType, Mesh: mesh, Name: resource.VIPRecordName(e.GetService()),
			Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
		Spec: &v1alpha1.VIPTable{Entries: []*v1alpha1.VIPTable_Entry{e}},
	}
}

// Plan returns the writes that bring a mesh's VIP records (records: every
// VIPTable of the mesh) in step with the services offered now, as
// Reconcile decides: only the records that change. It writes nothing
// else, so a new service costs one small record.
//
// A mesh that still has its legacy table is migrated first, and nothing
// else is planned until it is: every legacy entry becomes its service's
// record unchanged (VIPs, unused_since), unless the service already has a
// record, and the legacy table is deleted after them, so no service is
// ever without its VIP and no VIP moves. An entry whose VIP another
// record holds is left out; Reconcile gives its service a new one.
//
// When the range is full, the ops are still returned (releases free
// addresses for the next plan) with an error satisfying errors.Is(err,
// ErrFull): write them, and report the error.
//
// Deletes of released records come before puts: a VIP released and given
// to another service in the same plan is never held by both, even when
// the plan is written in several transactions.
func Plan(records []*resource.Resource, mesh string, offered map[string]bool, cidr, cidr6 netip.Prefix, now time.Time, cooldown time.Duration) ([]store.Op, error) {
	var legacy *resource.Resource
	have := map[string]*resource.Resource{} // service records by name
	for _, r := range records {
		if r.Meta.Name == resource.VIPTableName {
			legacy = r
		} else {
			have[r.Meta.Name] = r
		}
	}
	if legacy != nil {
		return migrate(legacy, have), nil
	}
	next, _, err := Reconcile(&v1alpha1.VIPTable{Entries: Entries(records)}, mesh, offered, cidr, cidr6, now, cooldown)
	if err != nil && !errors.Is(err, ErrFull) {
		return nil, err
	}
	want := make(map[string]*v1alpha1.VIPTable_Entry, len(next.GetEntries()))
	for _, e := range next.GetEntries() {
		want[resource.VIPRecordName(e.GetService())] = e
	}
	var deletes, puts []store.Op
	for name, r := range have {
		if _, kept := want[name]; !kept {
			deletes = append(deletes, store.Op{Delete: r.Key()})
		}
	}
	for name, e := range want {
		if r := have[name]; r != nil && sameEntry(r, e) {
			continue
		}
		puts = append(puts, store.Op{Put: Record(mesh, e)})
	}
	sortOps(deletes)
	sortOps(puts)
	return append(deletes, puts...), err
}

// migrate splits a legacy table into service records, then deletes it.
func migrate(legacy *resource.Resource, have map[string]*resource.Resource) []store.Op {
	taken := map[string]bool{}
	take := func(e *v1alpha1.VIPTable_Entry) {
		for _, a := range []string{e.GetVip(), e.GetVip6()} {
			if a != "" {
				taken[a] = true
			}
		}
	}
	for _, r := range have {
		for _, e := range r.Spec.(*v1alpha1.VIPTable).GetEntries() {
			take(e)
		}
	}
	var ops []store.Op
	for _, e := range legacy.Spec.(*v1alpha1.VIPTable).GetEntries() {
		if have[resource.VIPRecordName(e.GetService())] != nil || taken[e.GetVip()] || taken[e.GetVip6()] {
			continue
		}
		take(e)
		ops = append(ops, store.Op{Put: Record(legacy.Meta.Mesh, proto.CloneOf(e))})
	}
	sortOps(ops)
	return append(ops, store.Op{Delete: legacy.Key()})
}

// sameEntry reports whether r is a service record holding just e.
func sameEntry(r *resource.Resource, e *v1alpha1.VIPTable_Entry) bool {
	entries := r.Spec.(*v1alpha1.VIPTable).GetEntries()
	return len(entries) == 1 && proto.Equal(entries[0], e)
}

func sortOps(ops []store.Op) {
	name := func(op store.Op) string {
		if op.Put != nil {
			return op.Put.Meta.Name
		}
		return op.Delete.Name
	}
	sort.Slice(ops, func(i, j int) bool { return name(ops[i]) < name(ops[j]) })
}
