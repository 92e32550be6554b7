package zone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/version"
	"github.com/atoll-mesh/atoll/kds"
)

// globalLink is the zone's tie to its global: the guard over the global's
// identity and, unless the zone runs on its own, the KDS client that sends
// local Dataplanes and the ZoneIngress and stores what the global sends.
type globalLink struct {
	zone   string
	guard  *globalGuard
	client *kds.Client // nil when the zone runs on its own
}

// newGlobalLink reads the remembered global identity from the data dir and,
// with a global address, builds the KDS client. The session reads local
// Dataplanes from idx, the zone's own ZoneIngress from cache (subscribed
// to here: call before cache.Start), and keeps remote state in st.
func newGlobalLink(cfg Config, st store.Store, cache *store.Cache, idx *localIndex, log *slog.Logger) (*globalLink, error) {
	kdsLog := log.With("component", "kds")
	guard, err := loadGlobalGuard(filepath.Join(cfg.DataDir, globalIdentityFile), cfg.GlobalAddress, kdsLog)
	if err != nil {
		return nil, err
	}
	l := &globalLink{zone: cfg.Zone, guard: guard}
	if cfg.GlobalAddress == "" {
		log.Info("no global address: running on its own", "component", "zone")
		return l, nil
	}
	tc, addr, err := clientTLS(cfg)
	if err != nil {
		return nil, err
	}
	ep := &globalEndpoint{zone: cfg.Zone, store: st, cache: cache, wire: &kds.WireMemo{}, local: idx, guard: guard}
	l.client = kds.NewClient(kds.ClientConfig{
		Address: addr, TLS: tc, Zone: cfg.Zone, Token: tokenReader(cfg), InstanceID: instanceName(cfg.Zone), Version: version.Version,
		Log: kdsLog, OnHello: guard.hello, Features: []string{kds.FeaturePerServiceRecords},
	}, ep)
	guard.reconnect = l.client.Reconnect
	// The session reads the zone's own ZoneIngress from the cache: tell it
	// of a change once the cache holds it.
	// One changed record is compared alone (DesiredKeys); the memo forgets
	// a deleted one.
	cache.SubscribeKeys(func(t resource.Type, key *resource.Key) {
		switch {
		case t != resource.ZoneIngressType:
		case key == nil:
			l.client.Changed(t)
		default:
			if _, err := cache.Get(*key); store.IsNotFound(err) {
				ep.wire.ForgetName(*key, key.Name)
			}
			l.client.ChangedKeys(t, kds.WireKey("", key.Name))
		}
	})
	return l, nil
}

// Changed tells the session, if any, that t changed locally.
func (l *globalLink) Changed(t resource.Type) {
	if l.client != nil {
		l.client.Changed(t)
	}
}

// ChangedKeys tells the session, if any, that only the resources of t
// with these wire keys changed locally.
func (l *globalLink) ChangedKeys(t resource.Type, keys ...string) {
	if l.client != nil {
		l.client.ChangedKeys(t, keys...)
	}
}

// Run keeps the zone connected to its global until ctx ends; it returns at
// once when the zone runs on its own.
func (l *globalLink) Run(ctx context.Context) error {
	if l.client == nil {
		return nil
	}
	return l.client.Run(ctx)
}

// checks are the link's readiness conditions.
func (l *globalLink) checks() []apiserver.Check {
	return []apiserver.Check{{Name: "global", Check: func(context.Context) error {
		// An unreachable global leaves the zone serving what it has; a
		// global that refuses the zone's credentials needs the operator.
		if l.client == nil {
			return nil
		}
		if st := l.client.Status(); st.Refused {
			return fmt.Errorf("the global refuses this zone's credentials: %s (for this zone: atollctl generate zone-token --zone %s on the global, written to the --global-token-file)", st.LastError, l.zone)
		}
		return nil
	}}, {Name: "global identity", Check: func(context.Context) error { return l.guard.Problem() }}}
}

// clientTLS builds the TLS configuration for grpcs:// global addresses,
// or nil for grpc:// (allowed only with kdsInsecure, checked by Validate),
// and the KDS client's address: host:port, or several separated by commas
// for replicas of one global (each verified under its own host name).
func clientTLS(cfg Config) (*tls.Config, string, error) {
	var hosts []string
	var plaintext bool
	for _, raw := range splitGlobalAddresses(cfg.GlobalAddress) {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, "", fmt.Errorf("globalAddress: %w", err)
		}
		plaintext = u.Scheme == "grpc"
		hosts = append(hosts, u.Host)
	}
	if plaintext {
		return nil, strings.Join(hosts, ","), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(hosts) == 1 {
		host, _, err := net.SplitHostPort(hosts[0])
		if err != nil {
			host = hosts[0]
		}
		tc.ServerName = host
	}
	if cfg.GlobalCAFile != "" {
		pem, err := os.ReadFile(cfg.GlobalCAFile)
		if err != nil {
			return nil, "", fmt.Errorf("globalCAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("globalCAFile: %s holds no PEM certificate (get the global's CA from its /kds-ca.pem)", cfg.GlobalCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, strings.Join(hosts, ","), nil
}

// tokenReader returns the zone token source for the KDS client: the file
// read anew on every connection, so a rotated token needs no restart.
func tokenReader(cfg Config) func() (string, error) {
	if cfg.GlobalTokenFile == "" {
		return nil
	}
	return func() (string, error) {
		data, err := os.ReadFile(cfg.GlobalTokenFile)
		if err != nil {
			return "", fmt.Errorf("globalTokenFile: %w (write the token from atollctl generate zone-token --zone %s there)", err, cfg.Zone)
		}
		token := strings.TrimSpace(string(data))
		if token == "" || len(token) > 4096 || strings.ContainsAny(token, " \t\r\n") {
			return "", fmt.Errorf("globalTokenFile: %s does not hold one zone token: write the output of atollctl generate zone-token --zone %s there", cfg.GlobalTokenFile, cfg.Zone)
		}
		return token, nil
	}
}

// instanceName names this process to the global, which accepts a
// reconnect of the same instance but refuses another process connecting
// with this zone's name. The random part keeps two processes apart that
// share a host name and pid (pid 1 of same-named pods in two clusters);
// the pid stays last, after the final '-'.
func instanceName(zone string) string {
	host, err := os.Hostname()
	if err != nil {
		host = zone
	}
	return fmt.Sprintf("%s-%04x-%d", host, rand.N(1<<16), os.Getpid())
}
