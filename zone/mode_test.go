package zone

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
)

func TestOpenModeRefusesModesItCannotRun(t *testing.T) {
	tests := []struct {
		mode string
		want []string
	}{
		{mode: "foo", want: []string{"mode:", `"foo"`, "use universal"}},
		{mode: "", want: []string{"mode:", `""`}},
		{mode: "k8s", want: []string{"mode:", `"k8s"`, "use universal or kubernetes"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			cfg := Default()
			cfg.Zone, cfg.Mode, cfg.DataDir = "zone-1", tt.mode, t.TempDir()
			m, err := openMode(context.Background(), cfg, quiet())
			if err == nil {
				m.store.Close()
				t.Fatalf("openMode(%q) opened a mode, want it refused", tt.mode)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("openMode(%q) = %q, want it to contain %q", tt.mode, err, w)
				}
			}
			// Validate says the same, so a refused mode reads alike wherever
			// it is caught.
			if verr := cfg.Validate(); verr == nil || !strings.Contains(verr.Error(), err.Error()) {
				t.Errorf("Validate() = %v, want it to contain %q", verr, err)
			}
			if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
				t.Errorf("a refused mode left %d entries in the data dir", len(entries))
			}
		})
	}
}

func TestEveryModeInTheTableValidates(t *testing.T) {
	for name := range modes {
		cfg := Default()
		cfg.Zone, cfg.Mode = "zone-1", name
		if err := cfg.Validate(); err != nil {
			t.Errorf("mode %q: Validate() = %v, want no error", name, err)
		}
	}
}

func TestUniversalModeKeepsItsStateInABoltFileInTheDataDir(t *testing.T) {
	ctx := context.Background()
	cfg := Default()
	cfg.Zone, cfg.DataDir = "zone-1", t.TempDir()
	m, err := openMode(ctx, cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if m.source != nil {
		t.Errorf("universal mode has a source (%T): its Dataplanes come through the REST API only", m.source)
	}
	if _, err := m.store.Create(ctx, mesh("payments")); err != nil {
		t.Fatal(err)
	}
	if len(m.checks) != 1 || m.checks[0].Name != "store" {
		t.Fatalf("checks = %v, want one named store", m.checks)
	}
	if err := m.checks[0].Check(ctx); err != nil {
		t.Errorf("store check on an open store = %v, want ready", err)
	}
	if err := m.store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.checks[0].Check(ctx); err == nil {
		t.Error("store check on a closed store = nil, want an error")
	}

	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "zone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !has(t, st, resource.Key{Type: resource.MeshType, Name: "payments"}) {
		t.Error("the mesh written through the mode's store is not in dataDir/zone.db")
	}
}

func TestUniversalModeRefusesADataDirItCannotOpen(t *testing.T) {
	cfg := Default()
	cfg.Zone, cfg.DataDir = "zone-1", filepath.Join(t.TempDir(), "missing")
	_, err := openMode(context.Background(), cfg, quiet())
	if err == nil || !strings.HasPrefix(err.Error(), "dataDir:") {
		t.Fatalf("openMode in a missing directory = %v, want an error naming dataDir", err)
	}
}

// startedHandler catches the record that says the zone serves.
type startedHandler struct {
	slog.Handler
	started chan<- string
}

func (h startedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "zone control plane started" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "apiURL" {
				h.started <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

func (h startedHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h startedHandler) WithGroup(string) slog.Handler      { return h }

// Run in universal mode composes its parts around a bbolt store in the
// data dir: the zone serves, and what it wrote is there after it stops.
func TestRunInUniversalModeServesFromTheDataDir(t *testing.T) {
	cfg := Default()
	cfg.Zone, cfg.DataDir = "zone-1", t.TempDir()
	cfg.APIAddr, cfg.DNS.Addr, cfg.XDS.Addr = "127.0.0.1:0", "", ""
	started := make(chan string, 1)
	log := slog.New(startedHandler{Handler: slog.NewTextHandler(io.Discard, nil), started: started})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log) }()
	var url string
	select {
	case url = <-started:
	case err := <-done:
		cancel()
		t.Fatalf("Run = %v before it served", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("the zone did not start within 20s")
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The zone writes its ZoneIngress once it leads (a sole replica at
	// once), which may come after it answers: wait for it before stopping.
	deadline := time.Now().Add(20 * time.Second)
	for {
		zi, err := http.Get(url + "/zoneingresses/zone-1")
		if err == nil {
			zi.Body.Close()
			if zi.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the zone never served its ZoneIngress: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("GET /readyz = %d %q, want 200 ok", resp.StatusCode, body)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v after ctx ended, want nil", err)
	}

	st, err := boltstore.Open(filepath.Join(cfg.DataDir, "zone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, key := range []resource.Key{
		{Type: resource.MeshType, Name: resource.DefaultMesh},
		{Type: resource.ZoneIngressType, Name: "zone-1"},
	} {
		if !has(t, st, key) {
			t.Errorf("%s is not in dataDir/zone.db after the zone ran", key)
		}
	}
}

func TestRunRefusesAnUnknownModeBeforeTouchingTheDataDir(t *testing.T) {
	cfg := Default()
	cfg.Zone, cfg.Mode, cfg.DataDir = "zone-1", "cloud", filepath.Join(t.TempDir(), "zone")
	err := Run(context.Background(), cfg, quiet())
	if err == nil || !strings.Contains(err.Error(), `mode: "cloud" is not a mode`) {
		t.Fatalf("Run = %v, want the mode named", err)
	}
	if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
		t.Errorf("Run with an unknown mode created the data dir (stat: %v)", err)
	}
}
