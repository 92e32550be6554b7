package zone

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// loadLocal indexes the local Dataplanes st holds and brings the zone's
// ZoneIngress in step with them; watchLocal keeps both current after. A
// replica runs it when it starts to lead: what another replica wrote
// meanwhile is read again.
func loadLocal(ctx context.Context, st store.Reader, idx *localIndex, ingress *ingressWriter) error {
	all, err := st.List(ctx, resource.DataplaneType, "")
	if err != nil {
		return err
	}
	if err := idx.reset(all); err != nil {
		return err
	}
	ingress.last = nil
	if _, err := ingress.update(ctx, idx); err != nil {
		return fmt.Errorf("computing the zone ingress: %w", err)
	}
	return nil
}

// newServiceResolver keeps service VIPs and, when cfg enables it, the DNS
// server's table in step with the cache.
func newServiceResolver(cfg Config, socks *dns.Sockets, cache *store.Cache, log *slog.Logger, reg prometheus.Registerer) *resolver {
	log = log.With("component", "dns")
	res := newResolver(cache, netip.MustParsePrefix(cfg.VIPCIDR), cfg.DNS.Domain, log, reg)
	if cfg.VIPCIDR6 != "" {
		res.cidr6 = netip.MustParsePrefix(cfg.VIPCIDR6)
	}
	if cfg.DNS.Addr != "" {
		res.srv = dns.NewServer(dns.Config{Addr: cfg.DNS.Addr, Sockets: socks, Domain: cfg.DNS.Domain, TTL: cfg.DNS.TTL, Upstream: cfg.DNS.Upstream,
			UpstreamAllow: cfg.DNS.upstreamAllow(), MaxInFlight: cfg.DNS.MaxInFlight, MaxTCPConns: cfg.DNS.MaxTCPConns},
			log, reg)
	}
	return res
}

// newZoneCache holds what other zones offer and the VIP tables: few, large
// and read on every DNS rebuild, service view and push, so read from
// memory.
func newZoneCache(st store.Store) *store.Cache {
	return store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.VIPTableType,
		resource.ServiceEndpointsType)
}

// registerZoneAPI serves the REST resource API from st, where what callers
// write is the zone's own, labelled with its name, and the zone's status
// and services from cache and its link to the global.
func registerZoneAPI(mux *http.ServeMux, cfg Config, st apiserver.Store, cache *store.Cache, global *globalLink, elected election, log *slog.Logger) {
	apiserver.NewResources(apiserver.ResourcesConfig{
		Store: st,
		Side:  resource.WrittenOnZone,
		Labels: map[string]string{
			resource.OriginLabel: resource.OriginZone,
			resource.ZoneLabel:   cfg.Zone,
		},
		Log: log.With("component", "api"),
	}).Register(mux)
	(&statusAPI{zone: cfg.Zone, cache: cache, client: global.client, global: cfg.GlobalAddress, guard: global.guard, election: elected}).register(mux)
}

// listenAPI protects mux with the API token and serves it on ln, bound to
// cfg.APIAddr. It returns the server and the file holding the token.
func listenAPI(ctx context.Context, cfg Config, ln net.Listener, mux *http.ServeMux, reg prometheus.Registerer, log *slog.Logger) (*apiserver.Server, string, error) {
	protected, tokenFile, err := apiserver.Protect(mux, cfg.APITokenFile, cfg.DataDir, cfg.APIAuthLoopback)
	if err != nil {
		return nil, "", err
	}
	api, err := apiserver.Listen(ctx, apiserver.ListenConfig{Addr: cfg.APIAddr, Listener: ln, Handler: apiserver.Instrument(reg, protected),
		TLS: cfg.apiTLS(), Log: log.With("component", "api")})
	if err != nil {
		return nil, "", err
	}
	return api, tokenFile, nil
}
