package zone

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/atomicfile"
	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
	"github.com/atoll-mesh/atoll/internal/version"
	"github.com/atoll-mesh/atoll/kds"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// Run starts the zone control plane and blocks until ctx ends or a part
// fails. It validates cfg first.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if err := claimDataDir(cfg.DataDir, cfg.Zone); err != nil {
		return err
	}
	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "zone.db"))
	if err != nil {
		return fmt.Errorf("dataDir: %w", err)
	}
	defer st.Close()
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		return err
	}
	// Load the index before any session can ask for it: an empty index
	// would tell the global to remove this zone's Dataplanes.
	idx := newLocalIndex()
	all, err := st.List(ctx, resource.DataplaneType, "")
	if err != nil {
		return err
	}
	if err := idx.reset(all); err != nil {
		return err
	}
	ingress := &ingressWriter{store: st, zone: cfg.Zone, cfg: cfg.Ingress}
	if _, err := ingress.update(ctx, idx); err != nil {
		return fmt.Errorf("computing the zone ingress: %w", err)
	}
	// What other zones offer and the VIP tables are few, large and read on
	// every DNS rebuild, service view and push: read them from memory.
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.VIPTableType,
		resource.ServiceEndpointsType)
	guard, err := loadGlobalGuard(filepath.Join(cfg.DataDir, globalIdentityFile), cfg.GlobalAddress, log.With("component", "kds"))
	if err != nil {
		return err
	}
	var client *kds.Client
	var notify changeNotifier = noNotify{}
	if cfg.GlobalAddress == "" {
		log.Info("no global address: running on its own", "component", "zone")
	} else {
		tc, addr, err := clientTLS(cfg)
		if err != nil {
			return err
		}
		client = kds.NewClient(kds.ClientConfig{
			Address: addr, TLS: tc, Zone: cfg.Zone, Token: tokenReader(cfg), InstanceID: instanceName(cfg.Zone), Version: version.Version,
			Log: log.With("component", "kds"), OnHello: guard.hello,
		}, &globalEndpoint{zone: cfg.Zone, store: st, cache: cache, wire: &kds.WireMemo{}, local: idx, guard: guard})
		guard.reconnect = client.Reconnect
		notify = client
	}
	// The session reads the zone's own ZoneIngress from the cache: tell it
	// of a change once the cache holds it.
	cache.Subscribe(func(t resource.Type) {
		if t == resource.ZoneIngressType {
			notify.Changed(t)
		}
	})

	reg := apiserver.NewRegistry()
	mux := http.NewServeMux()
	apiserver.NewResources(apiserver.ResourcesConfig{
		Store: st,
		Side:  resource.WrittenOnZone,
		Labels: map[string]string{
			resource.OriginLabel: resource.OriginZone,
			resource.ZoneLabel:   cfg.Zone,
		},
		Log: log.With("component", "api"),
	}).Register(mux)
	(&statusAPI{zone: cfg.Zone, cache: cache, client: client, global: cfg.GlobalAddress, guard: guard}).register(mux)
	res := newResolver(cache, netip.MustParsePrefix(cfg.VIPCIDR), cfg.DNS.Domain, log.With("component", "dns"), reg)
	if cfg.VIPCIDR6 != "" {
		res.cidr6 = netip.MustParsePrefix(cfg.VIPCIDR6)
	}
	if cfg.DNS.Addr != "" {
		res.srv = dns.NewServer(dns.Config{Addr: cfg.DNS.Addr, Domain: cfg.DNS.Domain, TTL: cfg.DNS.TTL, Upstream: cfg.DNS.Upstream,
			UpstreamAllow: cfg.DNS.upstreamAllow(), MaxInFlight: cfg.DNS.MaxInFlight, MaxTCPConns: cfg.DNS.MaxTCPConns},
			log.With("component", "dns"), reg)
	}
	var xdsServer *xds.Server
	if cfg.XDS.Addr != "" {
		ingress, err := ingressTLS(cfg)
		if err != nil {
			return err
		}
		tokenKey, err := certs.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "xds-token.key"))
		if err != nil {
			return fmt.Errorf("dataDir: the xDS token key: %w", err)
		}
		var xdsTLS *tls.Config
		var xdsCA []byte
		if cfg.XDS.TLS {
			if xdsTLS, xdsCA, err = xdsCertificate(ctx, cfg, log.With("component", "xds")); err != nil {
				return err
			}
		}
		xdsServer = xds.NewServer(xds.Config{
			Addr: cfg.XDS.Addr, Zone: cfg.Zone, Domain: cfg.DNS.Domain, Cache: cache, Store: st, VIPs: res.VIPs,
			Ingress: ingress, TokenKey: []byte(tokenKey), RequireTokens: cfg.XDS.RequireTokens, TLS: xdsTLS, CAPEM: xdsCA,
			Debounce: cfg.XDS.Debounce, Log: log.With("component", "xds"), Registry: reg,
		})
		res.onChange = xdsServer.Changed
		mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/xds", xdsServer.Handler)
		mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/xds/config", xdsServer.ConfigHandler)
		mux.HandleFunc("GET /zoneingresses/{name}/xds", xdsServer.IngressHandler)
		mux.HandleFunc("GET /proxies", xdsServer.ListHandler)
		mux.HandleFunc("GET /xds-ca.pem", xdsServer.CAHandler)
		mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/bootstrap", xdsServer.BootstrapHandler)
		mux.HandleFunc("GET /zoneingresses/{name}/bootstrap", xdsServer.IngressBootstrapHandler)
	}
	if err := cache.Start(ctx); err != nil {
		return err
	}
	res.rebuild()
	mux.HandleFunc("GET /meshes/{mesh}/vips", res.handler)
	apiserver.RegisterOps(mux, reg, apiserver.Check{Name: "store", Check: func(ctx context.Context) error {
		_, err := st.List(ctx, resource.MeshType, "")
		return err
	}}, apiserver.Check{Name: "global", Check: func(context.Context) error {
		// An unreachable global leaves the zone serving what it has; a
		// global that refuses the zone's credentials needs the operator.
		if client == nil {
			return nil
		}
		if st := client.Status(); st.Refused {
			return fmt.Errorf("the global refuses this zone's credentials: %s (for this zone: atollctl generate zone-token --zone %s on the global, written to the --global-token-file)", st.LastError, cfg.Zone)
		}
		return nil
	}}, apiserver.Check{Name: "global identity", Check: func(context.Context) error { return guard.Problem() }})
	protected, tokenFile, err := apiserver.Protect(mux, cfg.APITokenFile, cfg.DataDir, cfg.APIAuthLoopback)
	if err != nil {
		return err
	}
	api, err := apiserver.Listen(ctx, apiserver.ListenConfig{Addr: cfg.APIAddr, Handler: apiserver.Instrument(reg, protected),
		TLS: cfg.apiTLS(), Log: log.With("component", "api")})
	if err != nil {
		return err
	}
	log.Info("zone control plane started", "component", "api", "zone", cfg.Zone, "mode", cfg.Mode, "apiAddr", api.Addr(), "apiURL", api.URL(), "apiTokenFile", tokenFile)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return api.Run(ctx) })
	g.Go(func() error {
		return watchLocal(ctx, st, ingress, idx, notify, kds.DefaultDebounce, log.With("component", "zone"))
	})
	if client != nil {
		g.Go(func() error { return client.Run(ctx) })
	}
	g.Go(func() error { return res.Run(ctx) })
	if xdsServer != nil {
		g.Go(func() error { return xdsServer.Run(ctx) })
	}
	if res.srv != nil {
		g.Go(func() error { return res.srv.Run(ctx) })
	}
	err = g.Wait()
	log.Info("zone control plane stopped", "zone", cfg.Zone)
	return err
}

// ingressTLS is where the zone's ingress listens and the certificate it
// presents to other zones' proxies: generated once into the data dir.
func ingressTLS(cfg Config) (xds.IngressConfig, error) {
	hosts := []string{cfg.Ingress.Address}
	if cfg.Ingress.AdvertisedAddress != "" {
		hosts = append(hosts, cfg.Ingress.AdvertisedAddress)
	}
	// Re-issued (same CA) at start when it no longer covers the addresses
	// or nears its end; nothing verifies it yet (no mesh CA).
	files, _, err := certs.EnsureSelfSigned(filepath.Join(cfg.DataDir, "ingress-tls"), hosts, 5*365*24*time.Hour)
	if err != nil {
		return xds.IngressConfig{}, fmt.Errorf("dataDir: creating the ingress certificate: %w", err)
	}
	out := xds.IngressConfig{Address: cfg.Ingress.Address, Port: uint32(cfg.Ingress.Port)}
	if out.CertPEM, err = os.ReadFile(files.Cert); err == nil {
		out.KeyPEM, err = os.ReadFile(files.Key)
	}
	if err != nil {
		return xds.IngressConfig{}, fmt.Errorf("dataDir: reading the ingress certificate: %w", err)
	}
	return out, nil
}

// xdsCertificate keeps the xDS server's CA and certificate in
// dataDir/xds-tls current while the zone runs, and returns the server's TLS
// configuration and the CA.
func xdsCertificate(ctx context.Context, cfg Config, log *slog.Logger) (*tls.Config, []byte, error) {
	dir := filepath.Join(cfg.DataDir, "xds-tls")
	hosts := func() []string { return append(certs.DefaultHosts(), cfg.XDS.TLSSANs...) }
	files, err := certs.Maintain(ctx, dir, hosts, 365*24*time.Hour, 12*time.Hour, func(out certs.Outcome, err error) {
		switch {
		case err != nil:
			log.Error("keeping the xDS certificate current failed; retrying in 12h", "dir", dir, "error", err)
		case out.ReplacedCA:
			log.Warn("generated a new xDS CA: proxies need bootstraps (or /xds-ca.pem) fetched again", "dir", dir, "reason", out.Reason)
		case out.Issued:
			log.Info("issued the xDS certificate", "reason", out.Reason, "dir", dir)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dataDir: keeping the xDS certificate in %s: %w", dir, err)
	}
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		return nil, nil, err
	}
	reloader, err := certs.NewReloader(files.Cert, files.Key)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{GetCertificate: reloader.GetCertificate, MinVersion: tls.VersionTLS12}, ca, nil
}

func instanceName(zone string) string {
	host, err := os.Hostname()
	if err != nil {
		host = zone
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
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
