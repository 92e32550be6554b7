package zone

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// A mode's services' own addresses reach the xDS server: the gateway's
// configuration has a listener on each, and the mode is given the
// server's Changed to call when they change.
func TestRunGivesAModesServiceAddressesToTheXDSServer(t *testing.T) {
	const name = "test-service-addresses"
	hooked := make(chan func(), 1)
	modes[name] = func(ctx context.Context, cfg Config, log *slog.Logger) (*mode, error) {
		m, err := openUniversal(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		if err := store.EnsureMesh(ctx, m.store, resource.DefaultMesh, resource.OriginGlobal); err != nil {
			return nil, err
		}
		for _, dp := range []*v1alpha1.Dataplane_Networking{
			{Address: "10.1.0.1", Gateway: &v1alpha1.Dataplane_Networking_Gateway{Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
				Tags: map[string]string{resource.ServiceTag: "kong"}}},
			{Address: "10.1.0.2", Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{Port: 8080,
				Tags: map[string]string{resource.ServiceTag: "web_shop_svc_80"}}}},
		} {
			r := &resource.Resource{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: resource.DefaultMesh,
				Name: map[bool]string{true: "kong", false: "web-1"}[dp.Gateway != nil]}, Spec: &v1alpha1.Dataplane{Networking: dp}}
			if _, err := m.store.Create(ctx, r); err != nil {
				return nil, err
			}
		}
		m.serviceAddresses = func(mesh string) map[string][]netip.AddrPort {
			if mesh != resource.DefaultMesh {
				return nil
			}
			return map[string][]netip.AddrPort{"web_shop_svc_80": {netip.MustParseAddrPort("10.96.0.11:80")}}
		}
		m.onServiceAddresses = func(changed func()) { hooked <- changed }
		return m, nil
	}
	t.Cleanup(func() { delete(modes, name) })

	cfg := Default()
	cfg.Zone, cfg.Mode, cfg.DataDir = "zone-1", name, t.TempDir()
	cfg.APIAddr, cfg.DNS.Addr, cfg.XDS.Addr = "127.0.0.1:0", "", "127.0.0.1:0"
	started := make(chan string, 1)
	log := slog.New(startedHandler{Handler: slog.NewTextHandler(io.Discard, nil), started: started})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v after ctx ended, want nil", err)
		}
	}()
	var url string
	select {
	case url = <-started:
	case err := <-done:
		t.Fatalf("Run = %v before it served", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the zone did not start within 20s")
	}
	select {
	case changed := <-hooked:
		if changed == nil {
			t.Fatal("the mode was given a nil function to call on changes")
		}
		changed() // the xDS server's Changed: returns at once
	default:
		t.Fatal("Run did not give the mode a function to call when its services' addresses change")
	}
	resp, err := http.Get(url + "/meshes/default/dataplanes/kong/xds/config")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the gateway's configuration: %d %s", resp.StatusCode, body)
	}
	var config struct {
		Listeners map[string]struct {
			Address struct {
				SocketAddress struct {
					Address   string
					PortValue int
				}
			}
			FilterChains []struct {
				Filters []struct {
					TypedConfig struct{ Cluster string }
				}
			}
		} `json:"envoy.config.listener.v3.Listener"`
	}
	if err := json.Unmarshal(body, &config); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	l, ok := config.Listeners["outbound-ip:10.96.0.11:80"]
	if !ok {
		t.Fatalf("the gateway has no listener on web's address:\n%s", body)
	}
	if sa := l.Address.SocketAddress; sa.Address != "10.96.0.11" || sa.PortValue != 80 ||
		len(l.FilterChains) != 1 || len(l.FilterChains[0].Filters) != 1 ||
		l.FilterChains[0].Filters[0].TypedConfig.Cluster != "web_shop_svc_80:80" {
		t.Errorf("the listener on web's address: %+v, want 10.96.0.11:80 routed to web_shop_svc_80:80", l)
	}
}
