// Package global is the global control plane: it keeps every zone's state
// in etcd (embedded, or an external cluster), serves the REST API, and —
// with the KDS issue — syncs zones.
//
//	cfg := global.Default()
//	cfg.DataDir = "/tmp/atoll-global"
//	err := global.Run(ctx, cfg, logger) // blocks until ctx ends
package global
