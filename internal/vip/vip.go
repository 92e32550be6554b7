// Package vip allocates virtual IPs for services: deterministic proposals
// (the same on every control plane), and the reconciliation of a mesh's
// VIP assignments with the services zones offer, with a cool-down before a
// VIP is released and reused. Assignments are kept one VIPTable record per
// service (records.go); Plan turns a reconciliation into the writes of
// just the records that change.
package vip

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// DefaultCIDR is where VIPs come from unless configured.
const DefaultCIDR = "240.0.0.0/4"

// ErrFull means the range has no free address.
var ErrFull = errors.New("no free virtual IP left in the range: widen it")

// Propose returns the VIP for (mesh, service): a hash of the pair into
// cidr, then the next free address. Every control plane computes the same
// proposal from the same taken set, so a zone that cannot reach the global
// usually proposes exactly what the global will assign.
func Propose(cidr netip.Prefix, mesh, service string, taken map[netip.Addr]bool) (netip.Addr, error) {
	bits := cidr.Addr().BitLen() - cidr.Bits()
	if bits < 2 {
		return netip.Addr{}, fmt.Errorf("range %s is too small", cidr)
	}
	size := new(big.Int).Lsh(big.NewInt(1), uint(bits))
	usable := new(big.Int).Sub(size, big.NewInt(2)) // no network or broadcast address
	h := fnv.New64a()
	h.Write([]byte(mesh + "/" + service))
	offset := new(big.Int).Mod(new(big.Int).SetUint64(h.Sum64()), usable)
	base := new(big.Int).SetBytes(cidr.Masked().Addr().AsSlice())
	limit := usable.Uint64()
	if !usable.IsUint64() || limit > 1<<24 {
		limit = 1 << 24 // probing that far means the range is effectively full
	}
	for i := uint64(0); i < limit; i++ {
		n := new(big.Int).Add(offset, new(big.Int).SetUint64(i))
		n.Mod(n, usable)
		n.Add(n, big.NewInt(1))
		n.Add(n, base)
		addr := fromInt(n, cidr.Addr().Is4())
		if !taken[addr] {
			return addr, nil
		}
	}
	return netip.Addr{}, ErrFull
}

func fromInt(n *big.Int, v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		n.FillBytes(b[:])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	n.FillBytes(b[:])
	return netip.AddrFrom16(b)
}

// Reconcile returns the table for the services offered now: offered
// services keep their VIP, or get a new one unless another service holds
// their DNS name (see Settle); services no longer offered are marked
// unused and released after cooldown. A VIP cur holds twice stays with its
// first entry; the others get new ones. changed reports whether the table
// differs from cur.
//
// cidr6, when valid, also gives every service an IPv6 VIP.
//
// A full range does not stop the rest: the table is returned with every
// VIP that fits (releases included), and err satisfies errors.Is(err,
// ErrFull), naming the services left without one.
func Reconcile(cur *v1alpha1.VIPTable, mesh string, offered map[string]bool, cidr, cidr6 netip.Prefix, now time.Time, cooldown time.Duration) (*v1alpha1.VIPTable, bool, error) {
	next := &v1alpha1.VIPTable{}
	taken := map[netip.Addr]bool{}
	have := map[string]bool{}
	changed := false
	for _, e := range cur.GetEntries() {
		addr, err := netip.ParseAddr(e.GetVip())
		if err != nil || taken[addr] {
			changed = true
			continue // a corrupt or duplicate entry is dropped and reallocated
		}
		vip6 := e.GetVip6()
		if a6, err := netip.ParseAddr(vip6); err == nil && !taken[a6] {
			taken[a6] = true
		} else if vip6 != "" {
			vip6, changed = "", true
		}
		e := &v1alpha1.VIPTable_Entry{Service: e.GetService(), Vip: addr.String(), Vip6: vip6, UnusedSince: e.GetUnusedSince()}
		switch {
		case offered[e.Service]:
			if e.UnusedSince != nil {
				e.UnusedSince, changed = nil, true
			}
		case e.UnusedSince == nil:
			e.UnusedSince, changed = timestamppb.New(now), true
		case now.Sub(e.UnusedSince.AsTime()) >= cooldown:
			changed = true
			continue // released
		}
		taken[addr] = true
		have[e.Service] = true
		next.Entries = append(next.Entries, e)
	}
	// A service whose DNS name another holds gets no VIP: the holder
	// keeps the name in every zone (Settle).
	candidates := make([]string, 0, len(have)+len(offered))
	for s := range have {
		candidates = append(candidates, s)
	}
	for s := range offered {
		candidates = append(candidates, s)
	}
	lost := Settle(candidates, have)
	var missing []string
	for s := range offered {
		if _, conflict := lost[s]; !have[s] && !conflict {
			missing = append(missing, s)
		}
	}
	sort.Strings(missing) // allocation order must not depend on map order
	var unplaced []string
	for _, s := range missing {
		addr, err := Propose(cidr, mesh, s, taken)
		if errors.Is(err, ErrFull) {
			unplaced = append(unplaced, s)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		taken[addr] = true
		next.Entries = append(next.Entries, &v1alpha1.VIPTable_Entry{Service: s, Vip: addr.String()})
		changed = true
	}
	if cidr6.IsValid() {
		for _, e := range next.Entries {
			if e.GetVip6() != "" {
				continue
			}
			a6, err := Propose(cidr6, mesh, e.GetService(), taken)
			if errors.Is(err, ErrFull) {
				unplaced = append(unplaced, e.GetService()+" (IPv6)")
				continue
			}
			if err != nil {
				return nil, false, err
			}
			taken[a6] = true
			e.Vip6, changed = a6.String(), true
		}
	}
	sort.Slice(next.Entries, func(i, j int) bool { return next.Entries[i].Service < next.Entries[j].Service })
	if len(unplaced) > 0 {
		return next, changed, fmt.Errorf("mesh %q: %d services got no VIP (first %q): %w", mesh, len(unplaced), unplaced[0], ErrFull)
	}
	return next, changed, nil
}

// View is one service's VIP, as GET /meshes/{mesh}/vips returns it.
type View struct {
	Service string `json:"service"`
	VIP     string `json:"vip"`
	VIP6    string `json:"vip6,omitempty"`
	// Proposed: the zone serves its own deterministic proposal because the
	// global has not confirmed a VIP yet.
	Proposed bool `json:"proposed,omitempty"`
	// UnusedSince: no zone offers the service; the VIP is kept until the
	// cool-down ends.
	UnusedSince *time.Time `json:"unusedSince,omitempty"`
	// Conflict: another service holds this service's DNS name. In the
	// same mesh this service gets no VIP and no name until the holder's
	// entry is released.
	Conflict *Conflict `json:"conflict,omitempty"`
}

// Views lists a VIPTable's entries.
func Views(t *v1alpha1.VIPTable) []View {
	out := make([]View, 0, len(t.GetEntries()))
	for _, e := range t.GetEntries() {
		v := View{Service: e.GetService(), VIP: e.GetVip(), VIP6: e.GetVip6()}
		if e.GetUnusedSince() != nil {
			at := e.GetUnusedSince().AsTime()
			v.UnusedSince = &at
		}
		out = append(out, v)
	}
	return out
}

// Offered returns, per mesh, the services that ZoneIngresses offer.
func Offered(ingresses []*resource.Resource) map[string]map[string]bool {
	offered := map[string]map[string]bool{}
	for _, zi := range ingresses {
		for _, s := range zi.Spec.(*v1alpha1.ZoneIngress).GetAvailableServices() {
			if offered[s.GetMesh()] == nil {
				offered[s.GetMesh()] = map[string]bool{}
			}
			offered[s.GetMesh()][s.GetTags()[resource.ServiceTag]] = true
		}
	}
	return offered
}
