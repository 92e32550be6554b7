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
//   - the local index and the writer of the zone's service summary, its
//     own ZoneIngress and one per service offered (loadLocal, watchLocal,
//     ingress.go): follow the store's Dataplane events;
//   - the cache of Meshes, ZoneIngresses, VIP tables and ServiceEndpoints;
//   - the link to the global (newGlobalLink): the identity guard and the
//     KDS client, which sends the index and the summary and stores
//     what the global sends;
//   - the resolver of VIPs and the DNS server (newServiceResolver), and
//     the xDS server (newXDSServer), both driven by the cache;
//   - the REST API with its readiness checks (registerZoneAPI, listenAPI).
//
// # Replicas
//
// A mode may run a zone as several replicas (Kubernetes mode does). Its
// election (leader.go; kubernetes.Election over a Lease) picks the one
// that writes: only while a replica leads do the writers run, as one
// term: loadLocal, watchLocal, the link to the global and the mode's
// source. Everything that reads (the cache, the resolver and DNS server,
// the xDS server, the REST API, the mode's watch of what its source reads)
// runs on every replica from the shared store. Each term starts afresh:
// the index and the ZoneIngress are read again and the KDS session
// reconciles the full state, since another replica may have written in
// between. GET /zone (leader) and the atoll_zone_leader metric tell which
// replica leads.
//
// # Adding a mode
//
// A mode is an opener in the modes table, keyed by Config.Mode, which
// Validate and Run both consult. openMode calls it once at start; it
// returns a mode: the store.Store the zone keeps its state in (Run closes
// it), an optional source whose Run(ctx) error runs while the replica
// leads and which writes local Dataplanes into that store, an optional
// watch run on every replica, an optional election (none: the replica
// always leads), and the mode's readiness checks, served first on /readyz.
//
// Universal mode keeps its state in a bbolt file in the data dir and has
// no source: Dataplanes are registered through the REST API. Kubernetes
// mode (kubernetes_mode.go) plugs in here as an opener
// that builds a CRD-backed store and a source from package
// zone/kubernetes, which turns Pods into Dataplanes, receives a store
// writer, informers and a logger, and never imports zone. With
// kubernetes.injector.addr set, its watch also serves the sidecar injector
// on every replica (injector.go, zone/kubernetes/inject).
package zone
