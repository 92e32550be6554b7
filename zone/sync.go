package zone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/throttle"
)

// changeNotifier is told of local changes that the global should see.
type changeNotifier interface {
	Changed(t resource.Type)
}

// watchLocal keeps the zone's ZoneIngress in step with its Dataplanes and
// tells notify (the KDS client, or nothing) what changed. A change after a
// quiet interval is handled at once; bursts are gathered for up to debounce.
func watchLocal(ctx context.Context, st store.Store, ingress *ingressWriter, idx *localIndex, notify changeNotifier, debounce time.Duration, log *slog.Logger) error {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		dps, err := st.Watch(wctx, resource.DataplaneType)
		if err != nil {
			cancel()
			return err
		}
		// Watch, then list: events after the list only repeat or advance it.
		all, err := st.List(ctx, resource.DataplaneType, "")
		if err != nil {
			cancel()
			return err
		}
		if err := idx.reset(all); err != nil {
			cancel()
			return err
		}
		if _, err := ingress.update(ctx, idx); err != nil {
			cancel()
			return fmt.Errorf("computing the zone ingress: %w", err)
		}
		// Catch up on anything missed while no watch ran.
		notify.Changed(resource.DataplaneType)
		notify.Changed(resource.ZoneIngressType)
		throttled := throttle.New(debounce)
		recompute := func() {
			throttled.Acted()
			if _, err := ingress.update(ctx, idx); err != nil && ctx.Err() == nil {
				log.Warn("updating the zone ingress failed; it is retried on the next change", "error", err)
			}
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case e, ok := <-dps:
				if !ok {
					open = false
					break
				}
				counts, err := idx.apply(e)
				if err != nil {
					log.Warn("indexing a Dataplane failed", "name", e.Resource.Meta.Name, "error", err)
				}
				notify.Changed(resource.DataplaneType)
				if counts && throttled.Event() {
					recompute()
				}
			case <-throttled.C():
				recompute()
			}
		}
		cancel()
	}
	return nil
}

type noNotify struct{}

func (noNotify) Changed(resource.Type) {}

// clientTLS builds the TLS configuration for a grpcs:// global address, or
// nil for grpc:// (allowed only with kdsInsecure, checked by Validate).
func clientTLS(cfg Config) (*tls.Config, string, error) {
	u, err := url.Parse(cfg.GlobalAddress)
	if err != nil {
		return nil, "", fmt.Errorf("globalAddress: %w", err)
	}
	if u.Scheme == "grpc" {
		return nil, u.Host, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
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
	return tc, u.Host, nil
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
