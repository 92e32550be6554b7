// Package zone is a zone control plane: it keeps the zone's Dataplanes in a
// local database that survives restarts and serves the REST API through
// which universal-mode Dataplanes are registered.
//
//	cfg := zone.Default()
//	cfg.Zone, cfg.DataDir = "zone-1", "/tmp/atoll-zone-1"
//	err := zone.Run(ctx, cfg, logger) // blocks until ctx ends
package zone
