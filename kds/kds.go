// Package kds is atoll's zone ↔ global sync protocol. The zone dials the
// global; one gRPC stream carries both directions with delta-xDS semantics
// (per-resource versions, ACK/NACK, reconciliation on reconnect).
//
// Which types flow which way is declared once, on each type's descriptor in
// the resource registry; this package derives each end's send and receive
// sets from it, so adding a synced type is one line in the registry.
package kds

import "github.com/atoll-mesh/atoll/internal/resource"

// Side is one end of a KDS connection.
type Side int

const (
	ZoneSide Side = iota
	GlobalSide
)

func (s Side) String() string {
	if s == GlobalSide {
		return "global"
	}
	return "zone"
}

// SentBy returns the types side sends to the other end, in registry order.
func SentBy(reg *resource.Registry, side Side) []resource.Type {
	var out []resource.Type
	for _, d := range reg.All() {
		switch d.Sync {
		case resource.SyncZoneToGlobal:
			if side == ZoneSide {
				out = append(out, d.Type)
			}
		case resource.SyncGlobalToZones:
			if side == GlobalSide {
				out = append(out, d.Type)
			}
		case resource.SyncRelayToOtherZones:
			// Zones send their own; the global relays them to the others.
			out = append(out, d.Type)
		}
	}
	return out
}

// ReceivedBy returns the types side accepts from the other end: exactly
// what the other end sends. Anything else received is refused.
func ReceivedBy(reg *resource.Registry, side Side) []resource.Type {
	if side == ZoneSide {
		return SentBy(reg, GlobalSide)
	}
	return SentBy(reg, ZoneSide)
}

// FeaturePerServiceRecords, in a zone's Hello: the zone takes a zone's
// service summary and a mesh's VIPs as one record per service. The global
// sends a zone without it one ZoneIngress per zone and one VIPTable per
// mesh, as it did before.
const FeaturePerServiceRecords = "per-service-records"
