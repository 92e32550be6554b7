package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// mapZone is a zone endpoint over a map, to sync many Dataplanes quickly.
type mapZone struct {
	mu  sync.Mutex
	dps map[string]*v1alpha1.WireResource
}

func (z *mapZone) Desired(_ context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if t == resource.DataplaneType {
		return maps.Clone(z.dps), nil
	}
	return map[string]*v1alpha1.WireResource{}, nil
}

func (z *mapZone) Held(context.Context, resource.Type) (map[string]string, error) {
	return map[string]string{}, nil
}

func (z *mapZone) Apply(context.Context, resource.Type, []*v1alpha1.WireResource, []string) (map[string]string, error) {
	return nil, nil
}

// TestTwentyThousandDataplanesUnderTheMessageCap syncs 20,000 Dataplanes
// (several MiB) to a real global whose gRPC server refuses any message over
// a 256 KiB cap: the sync only completes if every message stays under it.
func TestTwentyThousandDataplanesUnderTheMessageCap(t *testing.T) {
	const n, limit = 20000, 256 << 10
	g := global.Default()
	g.APIAddr, g.KDSAddr = freePort(t), freePort(t)
	g.DataDir = filepath.Join(t.TempDir(), "global")
	g.Etcd.ClientAddr, g.Etcd.PeerAddr = "127.0.0.1:0", "127.0.0.1:0"
	g.KDS.Insecure, g.KDS.MaxMessageSize = true, limit
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	wg.Add(1)
	go func() { defer wg.Done(); global.Run(ctx, g, quiet) }()
	waitFor(t, time.Minute, "the global to be ready", func() error {
		resp, err := http.Get("http://" + g.APIAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})

	z := &mapZone{dps: map[string]*v1alpha1.WireResource{}}
	total := 0
	for i := range n {
		name := fmt.Sprintf("dp-%05d", i)
		w, err := kds.ToWire(storetest.Dataplane("default", name, uint32(1+i%60000)), name)
		if err != nil {
			t.Fatal(err)
		}
		z.dps[kds.WireKey("default", name)] = w
		total += len(w.GetSpec())
	}
	if total < 3*limit {
		t.Fatalf("the test data (%d bytes) must need several messages", total)
	}
	token := issueToken(t, "http://"+g.APIAddr, "zone-1")
	client := kds.NewClient(kds.ClientConfig{
		Address: g.KDSAddr, Zone: "zone-1", Log: quiet,
		Token:   func() (string, error) { return token, nil },
		Session: kds.SessionConfig{MaxMessageSize: limit},
	}, z)
	wg.Add(1)
	go func() { defer wg.Done(); client.Run(ctx) }()

	waitFor(t, 2*time.Minute, "20,000 Dataplanes on the global", func() error {
		status, body := call(t, "GET", "http://"+g.APIAddr+"/zones/zone-1", "")
		var v struct {
			Dataplanes int `json:"dataplanes"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Dataplanes != n {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	st := client.Status()
	if st.Session == nil || st.Session.Types[resource.DataplaneType].Acked != n || st.Session.Types[resource.DataplaneType].Nacked != 0 {
		t.Fatalf("the zone's counters: %+v", st.Session)
	}
}
