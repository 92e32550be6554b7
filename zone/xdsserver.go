package zone

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// newXDSServer builds the xDS server for cfg.XDS, serving on ln: the
// ingress certificate and the key proxies' tokens are signed with, in the
// data dir, and with xds.tls the xDS certificate (xdstls.go). Proxies' Dataplanes
// are read from st, what other zones offer from cache, VIPs from vips,
// services' own addresses (optional) from addrs; proxies' credentials
// are checked by auth when set (in Kubernetes mode).
func newXDSServer(ctx context.Context, cfg Config, ln net.Listener, st xdsStore, cache *store.Cache, vips func(mesh string) map[string]netip.Addr,
	addrs func(mesh string) map[string][]netip.AddrPort, auth xds.ProxyAuthenticator, reg prometheus.Registerer, log *slog.Logger) (*xds.Server, error) {
	ingress, err := ingressTLS(cfg)
	if err != nil {
		return nil, err
	}
	tokenKey, err := certs.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "xds-token.key"))
	if err != nil {
		return nil, fmt.Errorf("dataDir: the xDS token key: %w", err)
	}
	log = log.With("component", "xds")
	var xdsTLS *tls.Config
	var xdsCA func() []byte
	if cfg.XDS.TLS {
		if xdsTLS, xdsCA, err = xdsCertificate(ctx, cfg, log); err != nil {
			return nil, err
		}
	}
	return xds.NewServer(xds.Config{
		Addr: cfg.XDS.Addr, Listener: ln, Zone: cfg.Zone, Domain: cfg.DNS.Domain, Cache: cache, Store: st, VIPs: vips, ServiceAddresses: addrs,
		Ingress: ingress, TokenKey: []byte(tokenKey), RequireTokens: cfg.XDS.RequireTokens, ProxyAuthenticator: auth, TLS: xdsTLS, CA: xdsCA,
		Debounce: cfg.XDS.Debounce, Log: log, Registry: reg,
	}), nil
}

// xdsStore is what the xDS server reads Dataplanes from.
type xdsStore interface {
	store.Reader
	store.Watcher
}

// routeXDS serves the xDS server's views and bootstraps on mux.
func routeXDS(mux *http.ServeMux, srv *xds.Server) {
	mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/xds", srv.Handler)
	mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/xds/config", srv.ConfigHandler)
	mux.HandleFunc("GET /zoneingresses/{name}/xds", srv.IngressHandler)
	mux.HandleFunc("GET /zoneingresses/{name}/xds/config", srv.IngressConfigHandler)
	mux.HandleFunc("GET /proxies", srv.ListHandler)
	mux.HandleFunc("GET /xds-ca.pem", srv.CAHandler)
	mux.HandleFunc("GET /meshes/{mesh}/dataplanes/{name}/bootstrap", srv.BootstrapHandler)
	mux.HandleFunc("GET /zoneingresses/{name}/bootstrap", srv.IngressBootstrapHandler)
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
