package zone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/atomicfile"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// Run starts the zone control plane and blocks until ctx ends or a part
// fails. It validates cfg first, opens the store and source of cfg.Mode,
// and composes around them the parts every mode shares.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	// Every listener is bound before anything starts or is logged as
	// started: a taken port is the first thing the user hears of.
	bound, err := bindListeners(cfg)
	if err != nil {
		return err
	}
	defer bound.close()
	cfg.Kubernetes.Injector.listener = bound.injector
	if err := claimDataDir(cfg.DataDir, cfg.Zone); err != nil {
		return err
	}
	// Where the state is kept and where local Dataplanes come from: all
	// that differs between modes (mode.go).
	m, err := openMode(ctx, cfg, log)
	if err != nil {
		return err
	}
	st := m.store
	defer st.Close()
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		return err
	}
	// The index of local Dataplanes and the ZoneIngress are loaded when
	// this replica comes to lead, before its session with the global.
	idx := newLocalIndex()
	ingress := &ingressWriter{store: st, zone: cfg.Zone, cfg: cfg.Ingress}
	elected := m.election
	if elected == nil {
		elected = &soleReplica{}
	}
	cache := newZoneCache(st)
	// The link, the resolver and the xDS server subscribe to the cache:
	// build them before it starts.
	global, err := newGlobalLink(cfg, st, cache, idx, log)
	if err != nil {
		return err
	}
	reg := apiserver.NewRegistry()
	mux := http.NewServeMux()
	registerZoneAPI(mux, cfg, st, cache, global, elected, log)
	registerLeaderMetric(reg, elected)
	res := newServiceResolver(cfg, bound.dns, cache, log, reg)
	var proxies *xds.Server
	if cfg.XDS.Addr != "" {
		if proxies, err = newXDSServer(ctx, cfg, bound.xds, st, cache, res.VIPs, m.serviceAddresses, m.proxyAuth, reg, log); err != nil {
			return err
		}
		res.onChange = proxies.Changed
		if m.onServiceAddresses != nil {
			m.onServiceAddresses(proxies.Changed)
		}
		routeXDS(mux, proxies)
	}
	if err := cache.Start(ctx); err != nil {
		return err
	}
	res.rebuild()
	mux.HandleFunc("GET /meshes/{mesh}/vips", res.handler)
	apiserver.RegisterIdentity(mux, apiserver.Identity{Kind: apiserver.KindZone, Zone: cfg.Zone})
	apiserver.RegisterOps(mux, reg, slices.Concat(m.checks, global.checks())...)
	api, tokenFile, err := listenAPI(ctx, cfg, bound.api, mux, reg, log)
	if err != nil {
		return err
	}
	log.Info("zone control plane started", "component", "api", "zone", cfg.Zone, "mode", cfg.Mode, "apiAddr", api.Addr(), "apiURL", api.URL(), "apiTokenFile", tokenFile)

	// Every replica serves the API, DNS and xDS from the store and its
	// cache; the writers run only while this replica leads.
	lead := func(ctx context.Context) error {
		if err := loadLocal(ctx, st, idx, ingress); err != nil {
			return err
		}
		g, ctx := errgroup.WithContext(ctx)
		run := func(part func(context.Context) error) { g.Go(func() error { return part(ctx) }) }
		run(func(ctx context.Context) error {
			return watchLocal(ctx, st, ingress, idx, global, kds.DefaultDebounce, log.With("component", "zone"))
		})
		run(global.Run)
		if m.source != nil {
			run(m.source.Run)
		}
		return g.Wait()
	}
	g, ctx := errgroup.WithContext(ctx)
	run := func(part func(context.Context) error) { g.Go(func() error { return part(ctx) }) }
	run(api.Run)
	run(res.Run)
	if proxies != nil {
		run(proxies.Run)
	}
	if res.srv != nil {
		run(res.srv.Run)
	}
	if m.watch != nil {
		run(m.watch)
	}
	run(func(ctx context.Context) error { return elected.Run(ctx, lead) })
	err = g.Wait()
	log.Info("zone control plane stopped", "zone", cfg.Zone)
	return err
}

// claimDataDir creates dir and records which zone owns it, so a zone is
// never started on another zone's state.
func claimDataDir(dir, zone string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dataDir: cannot create %s: %w", dir, err)
	}
	marker := filepath.Join(dir, "zone-name")
	owner, err := os.ReadFile(marker)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := atomicfile.Write(marker, []byte(zone+"\n"), 0o600); err != nil {
			return fmt.Errorf("dataDir: cannot write %s: %w", marker, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("dataDir: cannot read %s: %w", marker, err)
	}
	if got := string(bytes.TrimSpace(owner)); got != zone {
		return fmt.Errorf("dataDir: %s holds the state of zone %q, not %q: use another directory for this zone", dir, got, zone)
	}
	return nil
}
