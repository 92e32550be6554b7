package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// takeoverWait bounds how long a refused zone process needs to take over
// once the connected one is gone: it retries at most every 6 s (kds
// DefaultDuplicateBackoff 4 s, with jitter up to 1.5x), plus a connect.
const takeoverWait = 20 * time.Second

// dupLogEntry is one JSON log line of a process.
type dupLogEntry map[string]any

// dupLogEntries returns p's JSON log lines at level whose msg contains msg.
func dupLogEntries(p *process, level, msg string) []dupLogEntry {
	var out []dupLogEntry
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var e dupLogEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if m, _ := e["msg"].(string); e["level"] == level && strings.Contains(m, msg) {
			out = append(out, e)
		}
	}
	return out
}

// dupWaitLog waits until p logs a line at level whose msg contains msg, and
// returns the first.
func dupWaitLog(t *testing.T, p *process, level, msg string) dupLogEntry {
	t.Helper()
	var found dupLogEntry
	waitFor(t, syncWait, fmt.Sprintf("a %s log %q", level, msg), func() error {
		if es := dupLogEntries(p, level, msg); len(es) > 0 {
			found = es[0]
			return nil
		}
		return fmt.Errorf("not yet logged")
	})
	return found
}

// waitGlobalDataplanes waits until the global lists exactly want (sorted,
// comma-separated) as the Dataplanes of mesh default.
func waitGlobalDataplanes(t *testing.T, g *process, want string, timeout time.Duration) {
	t.Helper()
	url := g.apiURL + "/meshes/default/dataplanes"
	waitFor(t, timeout, url+" = "+want, func() error {
		status, body := call(t, "GET", url, "")
		if status != 200 {
			return fmt.Errorf("%d %s", status, body)
		}
		if got := strings.Join(listNames(t, body), ","); got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

// dupConnects counts how often zone process z connected to the global.
func dupConnects(z *process) int { return len(dupLogEntries(z, "INFO", "connected to the global")) }

var dupRefusal = regexp.MustCompile(`^zone zone-1 is already connected from 127\.0\.0\.1:\d+ \(since \d\d:\d\d:\d\d UTC\); two zone processes must not share a name: stop the other, or give this one another --zone name`)

// Two zone processes with one name: the second is refused with a message
// saying what to do, the first keeps its session and its Dataplanes at the
// global (no tug of war), and once the first stops, the second takes over.
func TestDuplicateZoneIsRefusedUntilTheConnectedOneStops(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	first := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	applyFile(t, first, "../sample/zone-1.yaml")
	waitGlobalDataplanes(t, g, "kong.zone-1", syncWait)

	second := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	other := strings.Replace(backendJSON, "backend-1", "other", 1)
	if status, body := call(t, "PUT", second.apiURL+"/meshes/default/dataplanes/other", other); status != 201 {
		t.Fatalf("%d %s", status, body)
	}

	// The newcomer's side: an ERROR that names the connected process and
	// what to do, and the same in atollctl status (GET /zone).
	e := dupWaitLog(t, second, "ERROR", "another process is connected with the same zone name")
	if msg, _ := e["error"].(string); !dupRefusal.MatchString(msg) {
		t.Errorf("the refused zone logs %q, want it to match %s", msg, dupRefusal)
	}
	if st := statusOf(t, second); st.Connected {
		t.Error("the refused zone says it is connected")
	}
	out, errOut, err := atollctl(t, "", "--api-url", second.apiURL, "status")
	if err != nil || !strings.Contains(out, "zone zone-1 is already connected from 127.0.0.1:") || !strings.Contains(out, "stop the other, or give this one another --zone name") {
		t.Errorf("atollctl status of the refused zone does not show why: %v\n%s%s", err, out, errOut)
	}

	// The global's side: a WARN with both addresses, and the metric.
	w := dupWaitLog(t, g, "WARN", "refused a second process connecting as a zone that is connected")
	for _, k := range []string{"connected", "refused"} {
		if addr, _ := w[k].(string); !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("the global's warning: %s = %q, want the process's address: %v", k, addr, w)
		}
	}
	if w["connected"] == w["refused"] {
		t.Errorf("the global's warning names one address twice: %v", w)
	}
	_, metrics := call(t, "GET", g.apiURL+"/metrics", "")
	if !regexp.MustCompile(`(?m)^atoll_global_zone_duplicate_refusals_total\{zone="zone-1"\} [1-9]`).MatchString(metrics) {
		t.Errorf("/metrics lacks atoll_global_zone_duplicate_refusals_total{zone=\"zone-1\"} >= 1")
	}

	// The first keeps syncing: a change reaches the global, the newcomer's
	// Dataplane does not, and the first never lost its session.
	backend := strings.Replace(backendJSON, "backend-1", "backend-a", 1)
	if status, body := call(t, "PUT", first.apiURL+"/meshes/default/dataplanes/backend-a", backend); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	waitGlobalDataplanes(t, g, "backend-a.zone-1,kong.zone-1", syncWait)
	waitFor(t, syncWait, "a second refusal", func() error {
		if n := len(dupLogEntries(second, "ERROR", "another process is connected with the same zone name")); n < 2 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	if n := dupConnects(first); n != 1 || !statusOf(t, first).Connected {
		t.Errorf("the first zone connected %d times (connected now: %t), want once and still connected:\n%s", n, statusOf(t, first).Connected, first.logs)
	}
	if n := dupConnects(second); n != 0 {
		t.Errorf("the refused zone logged %d dupConnects, want none", n)
	}

	// The first stops: the second takes over and its state replaces the
	// first's at the global.
	first.stop()
	waitGlobalDataplanes(t, g, "other.zone-1", takeoverWait)
	if !statusOf(t, second).Connected {
		t.Error("the second zone took over but does not say it is connected")
	}
}

// A connected zone process that goes silent (stopped with SIGSTOP: its
// connection stays open but nothing answers) is replaced by a newcomer
// once it has been silent for --zone-offline-after; when it wakes up it is
// the one refused, not the other way round.
func TestDuplicateZoneReplacesASilentOne(t *testing.T) {
	g := startGlobal(t, t.TempDir(), "--zone-offline-after", "2s")
	first := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	applyFile(t, first, "../sample/zone-1.yaml")
	waitGlobalDataplanes(t, g, "kong.zone-1", syncWait)

	second := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	other := strings.Replace(backendJSON, "backend-1", "other", 1)
	if status, body := call(t, "PUT", second.apiURL+"/meshes/default/dataplanes/other", other); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	dupWaitLog(t, second, "ERROR", "another process is connected with the same zone name")

	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	woken := false
	wake := func() {
		if !woken {
			woken = true
			first.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(wake) // registered after the process's own cleanup: runs before its stop
	w := dupWaitLog(t, g, "WARN", "replaced the session of a zone silent for too long")
	if w["zone"] != "zone-1" || w["old"] == w["new"] {
		t.Errorf("the global's warning: %v, want zone-1 and two addresses", w)
	}
	waitGlobalDataplanes(t, g, "other.zone-1", takeoverWait)

	wake()
	e := dupWaitLog(t, first, "ERROR", "another process is connected with the same zone name")
	if msg, _ := e["error"].(string); !dupRefusal.MatchString(msg) {
		t.Errorf("the woken zone logs %q, want it to match %s", msg, dupRefusal)
	}
	if !statusOf(t, second).Connected {
		t.Error("the zone that took over lost its session to the one that woke up")
	}
	waitGlobalDataplanes(t, g, "other.zone-1", syncWait)
}
