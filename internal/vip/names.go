package vip

import (
	"sort"

	"github.com/atoll-mesh/atoll/internal/naming"
)

// Conflict is a DNS name a service maps to but does not answer for,
// because another service holds it.
type Conflict struct {
	// Name is the DNS name, relative to the domain ("backend").
	Name string `json:"name"`
	// HeldBy is the service that answers for it.
	HeldBy string `json:"heldBy"`
	// Mesh is the holder's mesh when it is another mesh; then this service
	// keeps its VIP and only the name answers with the other's.
	Mesh string `json:"mesh,omitempty"`
}

// Settle decides which services of one mesh hold their DNS names when
// several map to the same one (names stored before the naming rule, such
// as "Backend" beside "backend"). candidates are the services offered or
// in the mesh's VIPTable; assigned are those with a VIPTable entry.
//
// Candidates take their names in this order, and one that finds any of
// its names taken loses them all:
//
//  1. services with a VIPTable entry: the global gives an entry only to a
//     service whose names are free (Reconcile), and an entry lasts while
//     the service is offered and through the cool-down after, so a name
//     already served is never taken by a newcomer. The table is the same
//     in every zone and survives restarts, so every zone decides alike;
//  2. names that follow the naming rule, before names stored before it;
//  3. byte order.
//
// It returns the losers, each with the name it lost and its holder.
func Settle(candidates []string, assigned map[string]bool) map[string]Conflict {
	order := make([]string, 0, len(candidates))
	seen := make(map[string]bool, len(candidates))
	for _, s := range candidates {
		if !seen[s] {
			seen[s] = true
			order = append(order, s)
		}
	}
	valid := make(map[string]bool, len(order))
	for _, s := range order {
		valid[s] = naming.CheckService(s) == ""
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if assigned[a] != assigned[b] {
			return assigned[a]
		}
		if valid[a] != valid[b] {
			return valid[a]
		}
		return a < b
	})
	holder := map[string]string{}
	var lost map[string]Conflict
	for _, s := range order {
		names := naming.DNSNames(s)
		taken := ""
		for _, n := range names {
			if holder[n] != "" {
				taken = n
				break
			}
		}
		if taken != "" {
			if lost == nil {
				lost = map[string]Conflict{}
			}
			lost[s] = Conflict{Name: taken, HeldBy: holder[taken]}
			continue
		}
		for _, n := range names {
			holder[n] = s
		}
	}
	return lost
}
