package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/zone"
)

// Bounds of the reconnect storm, stated in the README's Reliability
// section: every zone resynced within stormResync of the restarted global
// being ready, the global's peak resident memory under stormMemory.
const (
	stormZones      = 50
	stormDataplanes = 20 // per zone
	stormResync     = 60 * time.Second
	stormMemory     = 512 << 20
)

// A reconnect storm: 50 zones (real zone control planes, in this test's
// process, each on its own data directory and real gRPC over TLS with its
// own token) hold 20 Dataplanes each; the global is killed and started
// again, and every zone reconnects at once. All of them are online again
// with all their Dataplanes within a stated bound, and the global's peak
// resident memory stays under a stated bound.
func TestReconnectStormOf50Zones(t *testing.T) {
	gdir := t.TempDir()
	kdsAddr := freePort(t)
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	caFile := g.caFile()
	ctx, cancel := context.WithCancel(context.Background())
	var zones sync.WaitGroup
	t.Cleanup(func() { cancel(); zones.Wait() })
	apis := make([]string, stormZones)
	for i := range stormZones {
		name := fmt.Sprintf("zone-%02d", i)
		dir := t.TempDir()
		token := filepath.Join(dir, "token")
		if err := os.WriteFile(token, []byte(issueToken(t, g.apiURL, name)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := zone.Default()
		cfg.Zone, cfg.Mode, cfg.DataDir = name, "universal", filepath.Join(dir, "data")
		cfg.APIAddr, cfg.DNS.Addr, cfg.XDS.Addr = freePort(t), "127.0.0.1:0", "127.0.0.1:0"
		cfg.GlobalAddress, cfg.GlobalCAFile, cfg.GlobalTokenFile = "grpcs://"+kdsAddr, caFile, token
		zones.Add(1)
		go func() {
			defer zones.Done()
			if err := zone.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil && ctx.Err() == nil {
				t.Errorf("zone %s: %v", name, err)
			}
		}()
		apis[i] = "http://" + cfg.APIAddr
	}
	for i, api := range apis {
		waitFor(t, 60*time.Second, fmt.Sprintf("zone-%02d ready", i), func() error {
			status, body := get(api + "/readyz")
			if status != http.StatusOK {
				return fmt.Errorf("%d %s", status, body)
			}
			return nil
		})
		for k := range stormDataplanes {
			name := fmt.Sprintf("dp-%02d", k)
			body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":%q,"networking":{"address":"10.9.%d.%d","inbound":[{"port":9001,"tags":{"atoll.io/service":"svc-%02d"}}]}}`, name, i, k+1, i)
			if status, out := call(t, "PUT", api+"/meshes/default/dataplanes/"+name, body); status/100 != 2 {
				t.Fatalf("registering %s on zone-%02d: %d %s", name, i, status, out)
			}
		}
	}
	allResynced := func(what string, within time.Duration) {
		t.Helper()
		start := time.Now()
		waitFor(t, within, what, func() error {
			online, dataplanes, err := zonesAtGlobal(g.apiURL)
			if err != nil {
				return err
			}
			if online != stormZones || dataplanes != stormZones*stormDataplanes {
				return fmt.Errorf("%d of %d zones online, %d of %d Dataplanes", online, stormZones, dataplanes, stormZones*stormDataplanes)
			}
			return nil
		})
		t.Logf("%s: all %d zones online with their %d Dataplanes after %s", what, stormZones, stormZones*stormDataplanes, time.Since(start).Round(10*time.Millisecond))
	}
	allResynced("first sync", 2*stormResync)

	// The global's stored insights still say online after a kill: what
	// shows the storm is over is every zone in a session begun after the
	// restart, and a Dataplane each zone registers then at the global.
	kill(t, g)
	restarted := time.Now()
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	waitFor(t, stormResync, "every zone in a session begun after the restart", func() error {
		for i, api := range apis {
			status, body := get(api + "/zone")
			var st struct {
				Connected bool      `json:"connected"`
				Since     time.Time `json:"since"`
			}
			if status != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
				return fmt.Errorf("zone-%02d: GET /zone: %d %s", i, status, body)
			}
			if !st.Connected || st.Since.Before(restarted) {
				return fmt.Errorf("zone-%02d: connected %v since %s", i, st.Connected, st.Since)
			}
		}
		return nil
	})
	t.Logf("the storm: every zone reconnected %s after the global was killed", time.Since(restarted).Round(10*time.Millisecond))
	for i, api := range apis {
		body := fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":"after","networking":{"address":"10.9.%d.250","inbound":[{"port":9001,"tags":{"atoll.io/service":"svc-%02d"}}]}}`, i, i)
		if status, out := call(t, "PUT", api+"/meshes/default/dataplanes/after", body); status/100 != 2 {
			t.Fatalf("registering after on zone-%02d: %d %s", i, status, out)
		}
	}
	stormDataplanesNow := stormDataplanes + 1
	waitFor(t, stormResync, "each zone's Dataplane of after the storm at the global", func() error {
		online, dataplanes, err := zonesAtGlobal(g.apiURL)
		if err != nil {
			return err
		}
		if online != stormZones || dataplanes != stormZones*stormDataplanesNow {
			return fmt.Errorf("%d of %d zones online, %d of %d Dataplanes", online, stormZones, dataplanes, stormZones*stormDataplanesNow)
		}
		return nil
	})
	t.Logf("resynced: every zone's new Dataplane at the global %s after the kill", time.Since(restarted).Round(10*time.Millisecond))
	peak := peakRSS(t, g.cmd.Process.Pid)
	t.Logf("the restarted global's peak resident memory: %d MiB", peak>>20)
	if peak > stormMemory {
		t.Errorf("the global's peak resident memory through the storm is %d MiB, over the %d MiB bound", peak>>20, stormMemory>>20)
	}
}

// zonesAtGlobal counts the zones the global at apiURL has online and their
// Dataplanes.
func zonesAtGlobal(apiURL string) (online, dataplanes int, err error) {
	status, body := get(apiURL + "/zones")
	if status != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /zones: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Online     bool `json:"online"`
			Dataplanes int  `json:"dataplanes"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return 0, 0, err
	}
	for _, it := range l.Items {
		if it.Online {
			online++
			dataplanes += it.Dataplanes
		}
	}
	return online, dataplanes, nil
}

// get is a GET that never fails the test: a status and body, or 0 and the
// error.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// peakRSS is the peak resident memory of process pid (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
