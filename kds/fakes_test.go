package kds_test

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// waitFor bounds every wait for the sessions to do something.
const waitFor = 10 * time.Second

// pipe connects two Streams in memory. Messages are marshalled on Send and
// unmarshalled on Recv, as on the wire, so the two ends share no memory.
// buffer is how many messages may wait in each direction, like a
// transport's flow-control window.
func pipe(buffer int) (a, b *pipeEnd) {
	ab, ba := make(chan []byte, buffer), make(chan []byte, buffer)
	closed, once := make(chan struct{}), new(sync.Once)
	return &pipeEnd{in: ba, out: ab, closed: closed, once: once},
		&pipeEnd{in: ab, out: ba, closed: closed, once: once}
}

type pipeEnd struct {
	in     <-chan []byte
	out    chan<- []byte
	closed chan struct{}
	once   *sync.Once
}

var _ kds.Stream = (*pipeEnd)(nil)

func (p *pipeEnd) Send(m *v1alpha1.SyncMessage) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	select {
	case <-p.closed:
		return io.ErrClosedPipe
	case p.out <- b:
		return nil
	}
}

func (p *pipeEnd) Recv() (*v1alpha1.SyncMessage, error) {
	select {
	case <-p.closed:
		return nil, io.EOF
	case b := <-p.in:
		m := &v1alpha1.SyncMessage{}
		if err := proto.Unmarshal(b, m); err != nil {
			return nil, err
		}
		return m, nil
	}
}

// Close ends both directions.
func (p *pipeEnd) Close() { p.once.Do(func() { close(p.closed) }) }

// next is Recv for a test playing the peer: it fails the test when the
// session sends nothing within waitFor.
func (p *pipeEnd) next(t *testing.T) *v1alpha1.SyncMessage {
	t.Helper()
	select {
	case b := <-p.in:
		m := &v1alpha1.SyncMessage{}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatalf("the session sent bytes that do not unmarshal: %v", err)
		}
		return m
	case <-time.After(waitFor):
		t.Fatalf("the session sent nothing within %v", waitFor)
		return nil
	}
}

// recordingStream records the size of every message sent through it.
type recordingStream struct {
	kds.Stream
	mu     sync.Mutex
	sizes  []int
	pushes int
}

func (r *recordingStream) Send(m *v1alpha1.SyncMessage) error {
	r.mu.Lock()
	r.sizes = append(r.sizes, proto.Size(m))
	if m.GetPush() != nil {
		r.pushes++
	}
	r.mu.Unlock()
	return r.Stream.Send(m)
}

// fakeEndpoint keeps one end's data in maps.
type fakeEndpoint struct {
	mu      sync.Mutex
	desired map[resource.Type]map[string]*v1alpha1.WireResource
	held    map[resource.Type]map[string]*v1alpha1.WireResource
	// refuse maps wire keys Apply refuses to the reason it gives.
	refuse map[string]string
	// applied counts Apply calls by type.
	applied map[resource.Type]int
}

var _ kds.Endpoint = (*fakeEndpoint)(nil)

func newEndpoint() *fakeEndpoint {
	return &fakeEndpoint{
		desired: map[resource.Type]map[string]*v1alpha1.WireResource{},
		held:    map[resource.Type]map[string]*v1alpha1.WireResource{},
		refuse:  map[string]string{},
		applied: map[resource.Type]int{},
	}
}

func put(m map[resource.Type]map[string]*v1alpha1.WireResource, t resource.Type, ws []*v1alpha1.WireResource) {
	if m[t] == nil {
		m[t] = map[string]*v1alpha1.WireResource{}
	}
	for _, w := range ws {
		m[t][keyOf(w)] = w
	}
}

func copyOf(m map[string]*v1alpha1.WireResource) map[string]*v1alpha1.WireResource {
	out := make(map[string]*v1alpha1.WireResource, len(m))
	for k, w := range m {
		out[k] = w
	}
	return out
}

// want adds or replaces resources this end sends.
func (e *fakeEndpoint) want(t resource.Type, ws ...*v1alpha1.WireResource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	put(e.desired, t, ws)
}

// unwant stops sending a key.
func (e *fakeEndpoint) unwant(t resource.Type, key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.desired[t], key)
}

// hold makes this end start out holding resources, as if received earlier.
func (e *fakeEndpoint) hold(t resource.Type, ws ...*v1alpha1.WireResource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	put(e.held, t, ws)
}

func (e *fakeEndpoint) wanted(t resource.Type) map[string]*v1alpha1.WireResource {
	e.mu.Lock()
	defer e.mu.Unlock()
	return copyOf(e.desired[t])
}

func (e *fakeEndpoint) holding(t resource.Type) map[string]*v1alpha1.WireResource {
	e.mu.Lock()
	defer e.mu.Unlock()
	return copyOf(e.held[t])
}

func (e *fakeEndpoint) appliedTypes() map[resource.Type]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[resource.Type]int{}
	for t, n := range e.applied {
		out[t] = n
	}
	return out
}

func (e *fakeEndpoint) Desired(_ context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error) {
	return e.wanted(t), nil
}

func (e *fakeEndpoint) Held(_ context.Context, t resource.Type) (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for k, w := range e.held[t] {
		out[k] = w.GetVersion()
	}
	return out, nil
}

func (e *fakeEndpoint) Apply(_ context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) (map[string]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.applied[t]++
	refused := map[string]string{}
	var ok []*v1alpha1.WireResource
	for _, w := range upserts {
		if why, no := e.refuse[keyOf(w)]; no {
			refused[keyOf(w)] = why
			continue
		}
		ok = append(ok, w)
	}
	put(e.held, t, ok)
	for _, k := range removed {
		delete(e.held[t], k)
	}
	return refused, nil
}

func keyOf(w *v1alpha1.WireResource) string { return kds.WireKey(w.GetMesh(), w.GetName()) }

func toWire(t testing.TB, r *resource.Resource) *v1alpha1.WireResource {
	t.Helper()
	w, err := kds.ToWire(r, r.Meta.Name)
	if err != nil {
		t.Fatalf("ToWire(%s): %v", r.Key(), err)
	}
	return w
}

func dataplane(t testing.TB, name string, port uint32) *v1alpha1.WireResource {
	return toWire(t, storetest.Dataplane("default", name, port))
}

func mesh(t testing.TB, name string) *v1alpha1.WireResource {
	return toWire(t, &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: name}, Spec: &v1alpha1.Mesh{}})
}

func zoneIngress(t testing.TB, zone string) *v1alpha1.WireResource {
	return toWire(t, &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone + "-ingress"},
		Spec: &v1alpha1.ZoneIngress{Zone: zone, Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.1.0.1", Port: 10001}},
	})
}

// sameResources says how got differs from want, or nil.
func sameResources(got, want map[string]*v1alpha1.WireResource) error {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case !proto.Equal(g, w):
			diffs = append(diffs, fmt.Sprintf("%s is version %s, want %s", k, g.GetVersion(), w.GetVersion()))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "unexpected "+k)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return fmt.Errorf("%s", strings.Join(diffs, "; "))
}

// eventually polls cond until it returns nil, failing the test with cond's
// last error after waitFor.
func eventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("not within %v: %v", waitFor, err)
		case <-tick.C:
		}
	}
}

func zoneConfig() kds.SessionConfig {
	return kds.SessionConfig{
		Send:     kds.SentBy(resource.Types, kds.ZoneSide),
		Receive:  kds.ReceivedBy(resource.Types, kds.ZoneSide),
		Debounce: time.Millisecond,
	}
}

func globalConfig() kds.SessionConfig {
	return kds.SessionConfig{
		Send:     kds.SentBy(resource.Types, kds.GlobalSide),
		Receive:  kds.ReceivedBy(resource.Types, kds.GlobalSide),
		Debounce: time.Millisecond,
	}
}

// running is a session whose Run is in progress.
type running struct {
	*kds.Session
	done chan error
}

// stillRunning fails the test if Run has returned.
func (r *running) stillRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		t.Fatalf("the session ended: %v", err)
	default:
	}
}

// stats returns the session's counters for t.
func (r *running) stats(t resource.Type) kds.TypeStats {
	return r.Stats.Snapshot().Types[t]
}

// start runs a session until the test ends, then checks that Run returns.
func start(t *testing.T, stream kds.Stream, ep kds.Endpoint, cfg kds.SessionConfig) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Session: kds.NewSession(stream, ep, cfg), done: make(chan error, 1)}
	go func() { r.done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitFor):
			t.Errorf("Run did not return within %v of its context ending", waitFor)
		}
	})
	return r
}

// connect runs a zone's and a global's session against each other.
func connect(t *testing.T, zoneEp, globalEp *fakeEndpoint, zoneCfg, globalCfg kds.SessionConfig) (zone, global *running) {
	t.Helper()
	z, g := pipe(64)
	t.Cleanup(z.Close)
	return start(t, z, zoneEp, zoneCfg), start(t, g, globalEp, globalCfg)
}
