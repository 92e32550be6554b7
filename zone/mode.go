package zone

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// source keeps the zone's local Dataplanes in the zone's store, from
// wherever a mode finds them, until ctx ends. Everything downstream (the
// index sent to the global, the ZoneIngress, VIPs, DNS, xDS) follows the
// store's events, so a source writes Dataplanes and knows nothing else.
type source interface {
	Run(ctx context.Context) error
}

// mode is all that differs between the zone's modes: where its state is
// kept and where its local Dataplanes come from. Run composes the rest
// around it the same way for every mode.
type mode struct {
	// store keeps the zone's state: its own Dataplanes and ZoneIngress,
	// and what the global sends. Run closes it.
	store store.Store
	// source writes local Dataplanes into store while this replica leads
	// (see election); nil when they arrive through the REST API only,
	// which every mode serves.
	source source
	// watch, when set, runs on every replica for the zone's whole life:
	// what source reads from (the Kubernetes informers), kept warm on
	// followers so that a new leader writes at once.
	watch func(ctx context.Context) error
	// election decides which replica of the zone writes (leader.go); nil
	// when a zone runs as one replica, which always writes.
	election election
	// checks are the mode's readiness conditions, first on /readyz.
	checks []apiserver.Check
	// serviceAddresses, when set, returns the addresses a mesh's services
	// have of their own, by service name (in Kubernetes, each mesh
	// Service's ClusterIP:port): proxies get outbound listeners on them
	// besides the VIPs' (xds.Config.ServiceAddresses). It must cost a map
	// read. onServiceAddresses registers the function to call after what
	// it returns changed; Run gives it the xDS server's Changed. Both nil
	// in universal mode.
	serviceAddresses   func(mesh string) map[string][]netip.AddrPort
	onServiceAddresses func(changed func())
	// proxyAuth, when set, checks the credentials proxies present on
	// their xDS streams (xds.Config.ProxyAuthenticator): in Kubernetes,
	// pods' ServiceAccount tokens. nil in universal mode, where proxies
	// present the zone's tokens.
	proxyAuth xds.ProxyAuthenticator
}

// opener opens a mode's store and source. ctx bounds the opening only:
// the source runs under the ctx Run gives it.
type opener func(ctx context.Context, cfg Config, log *slog.Logger) (*mode, error)

// modes are the modes this zone can run in, by Config.Mode. Validate
// refuses any other.
var modes = map[string]opener{
	ModeUniversal:  openUniversal,
	ModeKubernetes: openKubernetes,
}

// checkMode is Validate's word on cfg.Mode.
func checkMode(name string) error {
	if _, ok := modes[name]; ok {
		return nil
	}
	return fmt.Errorf("mode: %q is not a mode: use universal or kubernetes", name)
}

// openMode opens the store and source of cfg.Mode.
func openMode(ctx context.Context, cfg Config, log *slog.Logger) (*mode, error) {
	open, ok := modes[cfg.Mode]
	if !ok {
		return nil, checkMode(cfg.Mode)
	}
	return open(ctx, cfg, log)
}

// openUniversal keeps the zone's state in a bbolt file in the data dir;
// Dataplanes are registered through the REST API, so there is no source.
func openUniversal(_ context.Context, cfg Config, _ *slog.Logger) (*mode, error) {
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "zone.db"))
	if err != nil {
		return nil, fmt.Errorf("dataDir: %w", err)
	}
	return &mode{store: st, checks: []apiserver.Check{storeCheck(st)}}, nil
}

// storeCheck is ready while st answers a read.
func storeCheck(st store.Reader) apiserver.Check {
	return apiserver.Check{Name: "store", Check: func(ctx context.Context) error {
		_, err := st.List(ctx, resource.MeshType, "")
		return err
	}}
}
