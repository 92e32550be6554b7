package kds_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

// floodStream is a peer that sends pushes as fast as the session reads
// them and does not read anything until released.
type floodStream struct {
	pushes   int
	released chan struct{}
	closed   chan struct{}
	once     sync.Once

	mu    sync.Mutex
	recvs int
	// readEarly is set when the session read more than maxRead messages
	// while the peer read nothing.
	maxRead   int
	readEarly int
	acks      int
}

func (f *floodStream) Recv() (*v1alpha1.SyncMessage, error) {
	f.mu.Lock()
	f.recvs++
	n := f.recvs
	select {
	case <-f.released:
	default:
		if n > f.maxRead && f.readEarly == 0 {
			f.readEarly = n
		}
	}
	f.mu.Unlock()
	if n > f.pushes {
		<-f.closed
		return nil, io.EOF
	}
	return &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: &v1alpha1.Push{
		Type: string(resource.MeshType), Nonce: fmt.Sprint(n),
		Resources: []*v1alpha1.WireResource{{Name: fmt.Sprintf("mesh-%d", n)}},
	}}}, nil
}

func (f *floodStream) Send(m *v1alpha1.SyncMessage) error {
	select {
	case <-f.released:
	case <-f.closed:
		return io.ErrClosedPipe
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.GetAck() != nil {
		f.acks++
	}
	return nil
}

func (f *floodStream) state() (recvs, readEarly, acks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recvs, f.readEarly, f.acks
}

func TestAPeerThatDoesNotReadIsHeldBack(t *testing.T) {
	// The peer pushes without end and reads nothing. The session owes its
	// subscriptions (the first one is stuck in Send) and an ACK per push
	// it handles; once it owes 16 messages it must stop handling, and
	// stop reading once it holds 5 messages read (4 queued, 1 in its
	// reader). That holds the peer back through flow control instead of
	// queueing in memory. Once the peer reads, everything is handled.
	const pushes = 1000
	cfg := zoneConfig()
	settled := 16 - (len(cfg.Receive) - 1) + 5
	maxRead := settled
	f := &floodStream{pushes: pushes, maxRead: maxRead, released: make(chan struct{}), closed: make(chan struct{})}
	t.Cleanup(func() { f.once.Do(func() { close(f.closed) }) })
	ep := newEndpoint()
	start(t, f, ep, cfg)

	eventually(t, func() error {
		if recvs, _, _ := f.state(); recvs < settled {
			return fmt.Errorf("the session read %d messages; it should read until it owes too many ACKs", recvs)
		}
		return nil
	})
	close(f.released)
	eventually(t, func() error {
		if _, _, acks := f.state(); acks != pushes {
			return fmt.Errorf("%d of %d pushes acknowledged", acks, pushes)
		}
		return nil
	})
	if _, early, _ := f.state(); early != 0 {
		t.Errorf("the session read %d messages while the peer read none; it should stop at %d", early, maxRead)
	}
	if got := ep.appliedTypes()[resource.MeshType]; got != pushes {
		t.Errorf("%d pushes applied, want %d", got, pushes)
	}
}

func TestPushesWaitForAcksBeyondTheWindow(t *testing.T) {
	// The peer subscribes and acknowledges nothing: the session sends only
	// a window of pushes (4), then waits; each ACK lets one more go.
	ep := newEndpoint()
	for i := range 200 {
		ep.want(resource.DataplaneType, dataplane(t, fmt.Sprintf("dp-%03d", i), 8080))
	}
	cfg := zoneConfig()
	cfg.MaxMessageSize = 66 << 10 // about 2 KiB of resources per push
	_, global := peerOf(t, ep, cfg)
	sub := &v1alpha1.Subscribe{Type: string(resource.DataplaneType)}
	if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Subscribe{Subscribe: sub}}); err != nil {
		t.Fatal(err)
	}
	var pushes []*v1alpha1.Push
	for range 4 {
		pushes = append(pushes, global.next(t).GetPush())
	}
	// A probe: the session answers it at once, so its ACK comes next
	// unless the session sent a fifth push without waiting for an ACK.
	probe := &v1alpha1.Push{Type: string(resource.MeshType), Nonce: "probe", Resources: []*v1alpha1.WireResource{mesh(t, "default")}}
	if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: probe}}); err != nil {
		t.Fatal(err)
	}
	if m := global.next(t); m.GetAck().GetNonce() != "probe" {
		t.Fatalf("got %.200v after 4 unacknowledged pushes, want the probe's ACK: the window is 4 pushes", m)
	}
	got := 0
	for _, p := range pushes {
		got += len(p.GetResources())
	}
	for got < 200 {
		p := pushes[0]
		pushes = pushes[1:]
		ack := &v1alpha1.Ack{Type: p.GetType(), Nonce: p.GetNonce()}
		if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Ack{Ack: ack}}); err != nil {
			t.Fatal(err)
		}
		next := global.next(t).GetPush()
		if next == nil {
			t.Fatal("the session sent something other than a push")
		}
		pushes = append(pushes, next)
		got += len(next.GetResources())
	}
	if got != 200 {
		t.Errorf("%d dataplanes pushed, want 200", got)
	}
}

func TestTypeNamesFromThePeerAreCheckedFirst(t *testing.T) {
	huge := strings.Repeat("T", 200<<10)
	for name, msg := range map[string]*v1alpha1.SyncMessage{
		"subscribe": {Message: &v1alpha1.SyncMessage_Subscribe{Subscribe: &v1alpha1.Subscribe{Type: huge}}},
		"ack":       {Message: &v1alpha1.SyncMessage_Ack{Ack: &v1alpha1.Ack{Type: huge, Nonce: "1"}}},
		"ack of a received type": {Message: &v1alpha1.SyncMessage_Ack{Ack: &v1alpha1.Ack{
			Type: string(resource.MeshType), Nonce: "1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			zone, global := peerOf(t, newEndpoint(), zoneConfig())
			if err := global.Send(msg); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-zone.done:
				zone.done <- err // for start's cleanup
			case <-time.After(waitFor):
				t.Fatalf("the session still runs %v after the message", waitFor)
			}
			if !errors.Is(err, kds.ErrProtocol) {
				t.Fatalf("the session ended with %v, want a protocol error", err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("the error is %d bytes long: it should quote the type name shortened", len(err.Error()))
			}
			if types := zone.Stats.Snapshot().Types; len(types) != 0 {
				t.Errorf("the session keeps counters for %d types, want none", len(types))
			}
		})
	}

	t.Run("push", func(t *testing.T) {
		zone, global := peerOf(t, newEndpoint(), zoneConfig())
		var rs []*v1alpha1.WireResource
		for i := range 100 {
			rs = append(rs, dataplane(t, fmt.Sprintf("dp-%d", i), 8080))
		}
		push := &v1alpha1.Push{Type: huge, Nonce: "1", Resources: rs}
		if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: push}}); err != nil {
			t.Fatal(err)
		}
		ack := global.next(t).GetAck()
		if len(ack.GetErrors()) != 100 {
			t.Fatalf("%d resources NACKed, want 100", len(ack.GetErrors()))
		}
		for _, e := range ack.GetErrors() {
			if len(e.GetMessage()) > 200 || !strings.Contains(e.GetMessage(), "not accepted") {
				t.Fatalf("NACK reason %.100q… (%d bytes): want a short reason naming the type shortened", e.GetMessage(), len(e.GetMessage()))
			}
		}
		snap := zone.Stats.Snapshot()
		if len(snap.Types) != 0 || snap.RefusedUnknown != 100 {
			t.Errorf("counters for %d types and %d refused of unknown types; want none and 100", len(snap.Types), snap.RefusedUnknown)
		}
		zone.stillRunning(t)
	})
}

func TestAnAckFitsAMessageWhateverThePushHeld(t *testing.T) {
	// 5,000 tiny resources of a type the zone does not accept: a reason
	// for each would make the ACK five times larger than a message may
	// be. The ACK names every key, with reasons while they fit.
	cfg := zoneConfig()
	cfg.MaxMessageSize = 128 << 10
	zone, global := peerOf(t, newEndpoint(), cfg)
	push := &v1alpha1.Push{Type: "NoSuchType", Nonce: "1"}
	for i := range 5000 {
		push.Resources = append(push.Resources, &v1alpha1.WireResource{Mesh: "m", Name: fmt.Sprint(i)})
	}
	if err := global.Send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: push}}); err != nil {
		t.Fatal(err)
	}
	m := global.next(t)
	if size := proto.Size(m); size > cfg.MaxMessageSize {
		t.Errorf("the ACK is %d bytes, over the %d-byte message cap", size, cfg.MaxMessageSize)
	}
	errs := m.GetAck().GetErrors()
	if len(errs) != 5000 {
		t.Fatalf("the ACK refuses %d resources, want 5000", len(errs))
	}
	if errs[0].GetMessage() == "" {
		t.Error("the first refusal carries no reason")
	}
	zone.stillRunning(t)
}
