// Package zone is a zone control plane: it keeps the zone's Dataplanes in a
// local store that survives restarts, syncs them with the global over KDS,
// and serves the REST API, service VIPs, .mesh DNS and xDS.
//
//	cfg := zone.Default()
//	cfg.Zone, cfg.DataDir = "zone-1", "/tmp/atoll-zone-1"
//	err := zone.Run(ctx, cfg, logger) // blocks until ctx ends
//
// # Composition
//
// Modes differ only in where the zone's state is kept and where its local
// Dataplanes come from. Run opens a mode (mode.go) and composes the same
// parts around it for every mode, each built by a small constructor from
// what it uses and run as Run(ctx) error in one errgroup:
//
//   - the local index and the ZoneIngress writer (loadLocal, watchLocal):
//     follow the store's Dataplane events;
//   - the cache of Meshes, ZoneIngresses, VIP tables and ServiceEndpoints;
//   - the link to the global (newGlobalLink): the identity guard and the
//     KDS client, which sends the index and the ZoneIngress and stores
//     what the global sends;
//   - the resolver of VIPs and the DNS server (newServiceResolver), and
//     the xDS server (newXDSServer), both driven by the cache;
//   - the REST API with its readiness checks (registerZoneAPI, listenAPI).
//
// # Adding a mode
//
// A mode is an opener in the modes table, keyed by Config.Mode, which
// Validate and Run both consult. openMode calls it once at start; it
// returns a mode: the store.Store the zone keeps its state in (Run closes
// it), an optional source whose Run(ctx) error Run starts with the other
// parts and which writes local Dataplanes into that store, and the mode's
// readiness checks, served first on /readyz.
//
// Universal mode keeps its state in a bbolt file in the data dir and has
// no source: Dataplanes are registered through the REST API. Kubernetes
// mode (not supported yet: Validate refuses it) plugs in here as an opener
// that builds a CRD-backed store and a source from package
// zone/kubernetes, which turns Pods into Dataplanes, receives a store
// writer, informers and a logger, and never imports zone.
package zone
