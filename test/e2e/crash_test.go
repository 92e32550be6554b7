package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Crashes during sync: while writers register and remove Dataplanes on
// zone-1 and create and delete meshes on the global as fast as the APIs
// answer, the global (its embedded etcd with it) and zone-1 are killed
// with SIGKILL at random moments, many times, and started again on their
// data directories. Afterwards:
//
//   - every write an API acknowledged (2xx) before a kill holds in the
//     process started after it, checked at each restart with the writers
//     paused: an acknowledged Dataplane or mesh is there, an acknowledged
//     deletion did not come back; a write in flight at the kill may have
//     happened or not;
//   - the global holds exactly zone-1's Dataplanes, zone-2 counts exactly
//     zone-1's instances of each service, and both zones hold exactly the
//     global's meshes (zone-1 → global → zone-2 and global → zones, each
//     hop acknowledged over KDS, survive the kills);
//   - no process refused to start, and none panicked.
func TestCrashesDuringSyncLoseNoAcknowledgedWrite(t *testing.T) {
	const (
		kills      = 12  // SIGKILLs, alternately of the global and zone-1
		dataplanes = 120 // names the zone writer draws from
		meshes     = 20  // names the global writer draws from
		services   = 4   // Dataplane i runs service svc-<i%services>
	)
	gdir, z1dir := t.TempDir(), t.TempDir()
	kdsAddr := freePort(t)
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	caFile := g.caFile()
	z1 := startSyncedZone(t, "zone-1", z1dir, kdsAddr, caFile)
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, caFile)

	var globalURL, zone1URL atomic.Value
	globalURL.Store(g.apiURL)
	zone1URL.Store(z1.apiURL)
	dps, ms := newAckLog(), newAckLog()
	ctx, cancel := context.WithCancel(context.Background())
	// gate pauses the writers (each write holds it for reading) while a
	// restarted process is checked.
	var gate sync.RWMutex
	var writers sync.WaitGroup
	writers.Add(2)
	go func() {
		defer writers.Done()
		writeUntilDone(ctx, &gate, dps, func() string { return zone1URL.Load().(string) + "/meshes/default/dataplanes/" }, dataplanes, func(i int) string {
			return fmt.Sprintf(`{"type":"Dataplane","mesh":"default","name":"dp-%03d","networking":{"address":"10.9.%d.%d","inbound":[{"port":%d,"tags":{"atoll.io/service":"svc-%d"}}]}}`,
				i, i/250, i%250+1, 9000+i%services, i%services)
		}, func(i int) string { return fmt.Sprintf("dp-%03d", i) })
	}()
	go func() {
		defer writers.Done()
		writeUntilDone(ctx, &gate, ms, func() string { return globalURL.Load().(string) + "/meshes/" }, meshes,
			func(int) string { return `{"type":"Mesh"}` }, func(i int) string { return fmt.Sprintf("m-%02d", i) })
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for i := range kills {
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		if i%2 == 0 {
			before := ms.snapshot()
			kill(t, g)
			g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
			globalURL.Store(g.apiURL)
			gate.Lock()
			ms.checkSince(t, fmt.Sprintf("kill %d, the global's meshes", i+1), before, names(t, g.apiURL+"/meshes"))
			gate.Unlock()
		} else {
			before := dps.snapshot()
			kill(t, z1)
			z1 = startSyncedZone(t, "zone-1", z1dir, kdsAddr, caFile)
			zone1URL.Store(z1.apiURL)
			gate.Lock()
			dps.checkSince(t, fmt.Sprintf("kill %d, zone-1's Dataplanes", i+1), before, names(t, z1.apiURL+"/meshes/default/dataplanes"))
			gate.Unlock()
		}
	}
	time.Sleep(500 * time.Millisecond) // some writes after the last restart
	cancel()
	writers.Wait()
	t.Logf("zone-1 writes: %s; global writes: %s", dps.summary(), ms.summary())
	if dps.acked() < kills || ms.acked() < kills {
		t.Fatalf("too few writes were acknowledged to tell anything (%d Dataplane, %d mesh writes)", dps.acked(), ms.acked())
	}

	// The last acknowledged writes hold where they were made.
	onZone1 := names(t, z1.apiURL+"/meshes/default/dataplanes")
	dps.checkSince(t, "at the end, zone-1's Dataplanes", nil, onZone1)
	atGlobal := names(t, g.apiURL+"/meshes")
	ms.checkSince(t, "at the end, the global's meshes", nil, atGlobal)

	// Everything reaches everywhere it should. What zone-1 and the global
	// hold is read again at every poll: a write cancelled with the writers
	// may still be applied by its server after they stopped.
	zone1Now := func() (want []string, perService map[string]uint32) {
		perService = map[string]uint32{}
		for _, n := range names(t, z1.apiURL+"/meshes/default/dataplanes") {
			want = append(want, n+".zone-1")
			var i int
			fmt.Sscanf(n, "dp-%d", &i)
			perService[fmt.Sprintf("svc-%d", i%services)]++
		}
		slices.Sort(want)
		return want, perService
	}
	waitFor(t, syncWait, "the global holding exactly zone-1's Dataplanes", func() error {
		want, _ := zone1Now()
		var got []string
		for _, n := range names(t, g.apiURL+"/meshes/default/dataplanes") {
			if strings.HasSuffix(n, ".zone-1") {
				got = append(got, n)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("the global has %d of zone-1's Dataplanes, zone-1 %d; differing: %v", len(got), len(want), symmetricDifference(got, want))
		}
		return nil
	})
	waitFor(t, syncWait, "zone-2 counting zone-1's instances of each service", func() error {
		_, perService := zone1Now()
		for s := range services {
			svc := fmt.Sprintf("svc-%d", s)
			if n := instancesIn(t, z2.apiURL, svc, "zone-1"); n != perService[svc] {
				// Which hop holds the wrong count: zone-1's own summary,
				// the global's copy, or zone-2's.
				return fmt.Errorf("zone-2 counts %d instances of %s in zone-1, zone-1 has %d Dataplanes of it; zone-1's ZoneIngress records count %d, the global's %d, zone-2's %d",
					n, svc, perService[svc], summarised(t, z1.apiURL, svc, "zone-1"), summarised(t, g.apiURL, svc, "zone-1"), summarised(t, z2.apiURL, svc, "zone-1"))
			}
		}
		return nil
	})
	for _, z := range []*process{z1, z2} {
		waitFor(t, syncWait, "a zone holding exactly the global's meshes", func() error {
			atGlobal := names(t, g.apiURL+"/meshes")
			got := names(t, z.apiURL+"/meshes")
			if !slices.Equal(got, atGlobal) {
				return fmt.Errorf("the zone has meshes %v, the global %v", got, atGlobal)
			}
			return nil
		})
	}
	for _, p := range []*process{g, z1, z2} {
		if logs := p.logs.String(); strings.Contains(logs, "panic:") || strings.Contains(logs, "fatal error:") {
			t.Errorf("atoll %v panicked:\n%s", p.cmd.Args[1:], logs)
		}
	}
}

// kill sends SIGKILL to p and waits until it is gone.
func kill(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	// Panics before the kill would be lost with the process.
	if logs := p.logs.String(); strings.Contains(logs, "panic:") || strings.Contains(logs, "fatal error:") {
		t.Errorf("atoll %v panicked before it was killed:\n%s", p.cmd.Args[1:], logs)
	}
}

// ackState is what the writers know of a name: the last acknowledged
// write, or that a write's answer was lost.
type ackState int

const (
	neverWritten ackState = iota
	ackedPresent
	ackedAbsent
	unknownOutcome
)

// ackLog records, per name, what the last write acknowledged, how many
// writes of it ended, and whether one is in flight.
type ackLog struct {
	mu       sync.Mutex
	state    map[string]ackState
	ended    map[string]int
	inFlight map[string]bool
	n        map[ackState]int // writes by outcome
}

func newAckLog() *ackLog {
	return &ackLog{state: map[string]ackState{}, ended: map[string]int{}, inFlight: map[string]bool{}, n: map[ackState]int{}}
}

// begin records a write of name as in flight and returns what the last
// one acknowledged.
func (l *ackLog) begin(name string) ackState {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight[name] = true
	return l.state[name]
}

// abandon records that a write of name was never made.
func (l *ackLog) abandon(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inFlight, name)
}

// end records how a write of name ended.
func (l *ackLog) end(name string, s ackState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state[name] = s
	l.ended[name]++
	delete(l.inFlight, name)
	l.n[s]++
}

func (l *ackLog) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[ackedPresent] + l.n[ackedAbsent]
}

func (l *ackLog) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d acknowledged writes, %d deletions, %d answers lost", l.n[ackedPresent], l.n[ackedAbsent], l.n[unknownOutcome])
}

// ackSnapshot is what was acknowledged for the names with no write in
// flight at one moment, and how many writes of each had ended.
type ackSnapshot map[string]struct {
	state ackState
	ended int
}

func (l *ackLog) snapshot() ackSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	snap := ackSnapshot{}
	for name, s := range l.state {
		if !l.inFlight[name] {
			snap[name] = struct {
				state ackState
				ended int
			}{s, l.ended[name]}
		}
	}
	return snap
}

// checkSince reports every name of snap, with no write ended since, whose
// acknowledged state is not what holds; have lists the names that exist.
// A nil snap is the log as it is, with no write in flight.
func (l *ackLog) checkSince(t *testing.T, what string, snap ackSnapshot, have []string) {
	t.Helper()
	if snap == nil {
		snap = l.snapshot()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	checked := 0
	for name, was := range snap {
		if l.ended[name] != was.ended || l.inFlight[name] {
			continue // written again since
		}
		checked++
		switch there := slices.Contains(have, name); {
		case was.state == ackedPresent && !there:
			t.Errorf("%s: %s was written and acknowledged, and is gone", what, name)
		case was.state == ackedAbsent && there:
			t.Errorf("%s: %s was deleted and acknowledged, and is back", what, name)
		}
	}
	if checked == 0 {
		t.Errorf("%s: no acknowledged write was left to check", what)
	}
}

// writeUntilDone writes and deletes names base()+name(i), i < count, in a
// random order until ctx ends, recording every outcome in l. Any answer
// but an acknowledgement leaves the outcome unknown: the kill may have
// come after the write and before the answer.
func writeUntilDone(ctx context.Context, gate *sync.RWMutex, l *ackLog, base func() string, count int, body func(int) string, name func(int) string) {
	client := &http.Client{Timeout: 3 * time.Second}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for ctx.Err() == nil {
		gate.RLock()
		writeOnce(ctx, client, rng, l, base, count, body, name)
		gate.RUnlock()
	}
}

// writeOnce writes or deletes one name, recording the outcome in l.
func writeOnce(ctx context.Context, client *http.Client, rng *rand.Rand, l *ackLog, base func() string, count int, body func(int) string, name func(int) string) {
	i := rng.IntN(count)
	n := name(i)
	method, payload := http.MethodPut, body(i)
	if s := l.begin(n); s == ackedPresent || (s == unknownOutcome && rng.IntN(2) == 0) {
		method, payload = http.MethodDelete, ""
	}
	req, err := http.NewRequestWithContext(ctx, method, base()+n, strings.NewReader(payload))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nothing listens: the process is down and wrote nothing.
		l.abandon(n)
		time.Sleep(20 * time.Millisecond)
		return
	case err != nil:
		l.end(n, unknownOutcome) // killed or cancelled mid-request: either way
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case method == http.MethodPut && resp.StatusCode/100 == 2:
		l.end(n, ackedPresent)
	case method == http.MethodDelete && (resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound):
		l.end(n, ackedAbsent)
	default:
		l.end(n, unknownOutcome)
	}
}

// names lists the names of the resources at url, sorted.
func names(t *testing.T, url string) []string {
	t.Helper()
	status, body := call(t, "GET", url, "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	out := listNames(t, body)
	slices.Sort(out)
	return out
}

// instancesIn is how many instances of service in zone the zone whose API
// is apiURL counts.
func instancesIn(t *testing.T, apiURL, service, zone string) uint32 {
	t.Helper()
	status, body := call(t, "GET", apiURL+"/meshes/default/services", "")
	return instancesOf(t, status, body, service, zone)
}

// instancesOf reads how many instances of service in zone a zone's answer
// to GET /meshes/default/services counts.
func instancesOf(t *testing.T, status int, body, service, zone string) uint32 {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("GET /meshes/default/services: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Name  string            `json:"name"`
			Zones map[string]uint32 `json:"zones"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("GET /meshes/default/services: %v: %s", err, body)
	}
	for _, it := range l.Items {
		if it.Name == service {
			return it.Zones[zone]
		}
	}
	return 0
}

// symmetricDifference lists what is in exactly one of two sorted lists.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, "+"+x)
		}
	}
	for _, x := range b {
		if _, found := slices.BinarySearch(a, x); !found {
			out = append(out, "-"+x)
		}
	}
	return out
}

// summarised is how many instances of service in zone the ZoneIngress
// records at apiURL (a zone's or the global's) count.
func summarised(t *testing.T, apiURL, service, zone string) uint32 {
	t.Helper()
	status, body := call(t, "GET", apiURL+"/zoneingresses", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s/zoneingresses: %d %s", apiURL, status, body)
	}
	var l struct {
		Items []struct {
			Zone              string `json:"zone"`
			AvailableServices []struct {
				Tags      map[string]string `json:"tags"`
				Instances uint32            `json:"instances"`
			} `json:"availableServices"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("GET %s/zoneingresses: %v: %s", apiURL, err, body)
	}
	var n uint32
	for _, it := range l.Items {
		if it.Zone != zone {
			continue
		}
		for _, s := range it.AvailableServices {
			if s.Tags["atoll.io/service"] == service {
				n += s.Instances
			}
		}
	}
	return n
}
