package global

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-mesh/atoll/global/zoneauth"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/embedetcd"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/kds"
)

// Run starts the global control plane and blocks until ctx ends or a part
// fails. It validates cfg first.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	// Every listener is bound (or, for the embedded etcd, found free)
	// before anything starts or is logged as started.
	apiLn, kdsLn, err := bindListeners(cfg)
	if err != nil {
		return err
	}
	defer apiLn.Close()
	defer kdsLn.Close()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("dataDir: cannot create %s: %w", cfg.DataDir, err)
	}

	g, ctx := errgroup.WithContext(ctx)
	endpoints := cfg.Etcd.Endpoints
	if len(endpoints) == 0 {
		srv, err := embedetcd.Start(ctx, embedetcd.Config{
			DataDir:    filepath.Join(cfg.DataDir, "etcd"),
			ClientAddr: cfg.Etcd.ClientAddr,
			PeerAddr:   cfg.Etcd.PeerAddr,
		}, log.With("component", "etcd"))
		if err != nil {
			return err
		}
		defer srv.Close()
		endpoints = []string{srv.ClientEndpoint()}
		g.Go(func() error {
			select {
			case err := <-srv.Err():
				return fmt.Errorf("embedded etcd: %w", err)
			case <-ctx.Done():
				return nil
			}
		})
	}

	client, err := newEtcdClient(cfg.Etcd, endpoints)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := pingEtcd(ctx, client, cfg.Etcd); err != nil {
		return fmt.Errorf("cannot reach etcd at %v: %w (check etcd.endpoints and that etcd is running)", endpoints, err)
	}

	idCtx, cancel := context.WithTimeout(ctx, cfg.Etcd.DialTimeout)
	clusterID, err := loadClusterID(idCtx, client, cfg.Etcd.Prefix)
	cancel()
	if err != nil {
		return err
	}

	st := etcdstore.New(client, cfg.Etcd.Prefix+"resources/")
	st.FencePrefix = cfg.Etcd.Prefix + "kds-fences/"
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		return err
	}

	reg := apiserver.NewRegistry()
	mux := http.NewServeMux()
	instanceID := instanceName()
	// Meshes, zones and what zones offer are few, large and read on every
	// push: sessions and the VIP allocator read them from memory.
	cache := store.NewCache(st, resource.MeshType, resource.ZoneType, resource.ZoneInsightType,
		resource.ZoneIngressType, resource.VIPTableType)
	sync := newZoneSync(st, cache, instanceID, cfg.KDS.WithdrawOfflineAfter, reg, log.With("component", "kds"))
	sync.maxResourcesPerZone = cfg.KDS.MaxResourcesPerZone
	sync.silentAfter = cfg.KDS.ZoneOfflineAfter
	var auth kds.Authenticator = kds.AcceptAll{}
	var tokens *zoneauth.Authority
	if cfg.KDS.ZoneAuth == ZoneAuthNone {
		log.Warn("zones are not authenticated (kds.zoneAuth none): any client that reaches the KDS port can act as any zone; use only for experiments", "component", "kds")
	} else {
		tokens = zoneauth.New(zoneauth.Config{Client: client, Prefix: cfg.Etcd.Prefix + "zone-auth/", Registry: reg, Log: log.With("component", "zone-auth")})
		if err := tokens.Start(ctx); err != nil {
			return err
		}
		tokens.Register(mux)
		auth = tokens
		// A deleted zone cannot come back with the tokens it had.
		sync.revoke = func(ctx context.Context, zone string) error {
			_, err := tokens.Revoke(ctx, zone)
			return err
		}
	}
	kdsEP, err := startKDS(ctx, cfg, kdsLn, sync, auth, instanceID, clusterID, log.With("component", "kds"))
	if err != nil {
		return err
	}
	(&zonesAPI{store: st, offlineAfter: cfg.KDS.ZoneOfflineAfter}).register(mux)
	mux.HandleFunc("GET /meshes/{mesh}/vips", vipsHandler(st))
	// Zones name this identity when they refuse a global with another one.
	mux.HandleFunc("GET /global", func(w http.ResponseWriter, r *http.Request) {
		apiserver.WriteJSON(w, http.StatusOK, map[string]string{"clusterId": clusterID, "instance": instanceID})
	})
	allocator := newVIPAllocator(st, cache, netip.MustParsePrefix(cfg.VIP.CIDR), cfg.VIP.Cooldown, log.With("component", "vip"))
	if cfg.VIP.CIDR6 != "" {
		allocator.cidr6 = netip.MustParsePrefix(cfg.VIP.CIDR6)
	}
	if err := cache.Start(ctx); err != nil {
		return err
	}
	mux.HandleFunc("GET /kds-ca.pem", func(w http.ResponseWriter, r *http.Request) {
		if kdsEP.caPEM == nil {
			http.Error(w, "this global serves KDS with a configured certificate (or plaintext): get its CA from whoever issued it", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(kdsEP.caPEM)
	})
	apiserver.NewResources(apiserver.ResourcesConfig{
		Store:  st,
		Side:   resource.WrittenOnGlobal,
		Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal},
		Log:    log.With("component", "api"),
	}).Register(mux)
	apiserver.RegisterIdentity(mux, apiserver.Identity{Kind: apiserver.KindGlobal})
	apiserver.RegisterOps(mux, reg, apiserver.Check{Name: "etcd", Check: func(ctx context.Context) error {
		return pingEtcd(ctx, client, cfg.Etcd)
	}}, apiserver.Check{Name: "kds", Check: sync.Loaded})
	protected, tokenFile, err := apiserver.Protect(mux, cfg.APITokenFile, cfg.DataDir, cfg.APIAuthLoopback)
	if err != nil {
		return err
	}
	api, err := apiserver.Listen(ctx, apiserver.ListenConfig{Addr: cfg.APIAddr, Listener: apiLn, Handler: apiserver.Instrument(reg, protected),
		TLS: cfg.apiTLS(), Log: log.With("component", "api")})
	if err != nil {
		return err
	}
	log.Info("global control plane started", "component", "api", "apiAddr", api.Addr(), "apiURL", api.URL(), "kdsAddr", kdsEP.listener.Addr().String(), "etcd", endpoints, "instance", instanceID, "clusterID", clusterID, "apiTokenFile", tokenFile)
	g.Go(func() error { return api.Run(ctx) })
	g.Go(func() error { return sync.Run(ctx, min(10*time.Second, cfg.KDS.ZoneOfflineAfter/3)) })
	g.Go(func() error { return allocator.Run(ctx) })
	if tokens != nil {
		g.Go(func() error { return tokens.Run(ctx) })
	}
	g.Go(func() error {
		errc := make(chan error, 1)
		go func() { errc <- kdsEP.server.Serve(kdsEP.listener) }()
		select {
		case err := <-errc:
			return fmt.Errorf("kds server: %w", err)
		case <-ctx.Done():
			// Returns once every session handler has returned, its
			// disconnect recorded: only then may the deferred Close of the
			// etcd client (and of the embedded etcd) run.
			stopGRPC(kdsEP.server)
			return nil
		}
	})
	err = g.Wait()
	log.Info("global control plane stopped")
	return err
}

// bindListeners binds the API and KDS listeners and checks that the
// embedded etcd's ports are free, each error naming its setting.
func bindListeners(cfg Config) (api, kds net.Listener, err error) {
	if len(cfg.Etcd.Endpoints) == 0 {
		if err := config.CheckFree("etcd.clientAddr", cfg.Etcd.ClientAddr); err != nil {
			return nil, nil, err
		}
		if err := config.CheckFree("etcd.peerAddr", cfg.Etcd.PeerAddr); err != nil {
			return nil, nil, err
		}
	}
	if api, err = config.Listen("apiAddr", cfg.APIAddr); err != nil {
		return nil, nil, err
	}
	if kds, err = config.Listen("kdsAddr", cfg.KDSAddr); err != nil {
		api.Close()
		return nil, nil, err
	}
	return api, kds, nil
}

func newEtcdClient(cfg Etcd, endpoints []string) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(),
	}
	if cfg.CAFile != "" || cfg.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("etcd.caFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd.caFile: %s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		if cfg.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("etcd.certFile/etcd.keyFile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.TLS = tc
	}
	client, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return client, nil
}

// pingEtcd does a linearizable read, which succeeds only when the cluster
// has a leader and a quorum answers.
func pingEtcd(ctx context.Context, client *clientv3.Client, cfg Etcd) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	_, err := client.Get(ctx, cfg.Prefix+"health", clientv3.WithCountOnly())
	return err
}
