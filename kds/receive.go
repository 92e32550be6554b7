package kds

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// received is one result of the stream's Recv.
type received struct {
	msg *v1alpha1.SyncMessage
	err error
}

// receiveAll reads the stream until it breaks or ctx ends. At most
// recvQueue messages wait for Run, and one more in the reading goroutine:
// when Run does not take them, reading stops and the transport's flow
// control holds the peer back. The error that ends the stream comes last,
// after every message read before it.
func (s *Session) receiveAll(ctx context.Context) <-chan received {
	in := make(chan received, recvQueue)
	go func() {
		for {
			msg, err := s.stream.Recv()
			select {
			case in <- received{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return in
}

// maxReason bounds the reason given for each refused resource.
const maxReason = 1 << 10

// handle handles one message from the peer. Type names come from the peer:
// each is checked against what this end sends or receives before anything
// is kept for it, and is quoted in errors only shortened.
func (s *Session) handle(ctx context.Context, msg *v1alpha1.SyncMessage) error {
	switch m := msg.GetMessage().(type) {
	case *v1alpha1.SyncMessage_Subscribe:
		t := resource.Type(m.Subscribe.GetType())
		if !s.sends[t] {
			return fmt.Errorf("%w: peer subscribed to %s, which this end does not send", ErrProtocol, shorten(string(t)))
		}
		held := map[string]string{}
		for k, v := range m.Subscribe.GetInitialVersions() {
			held[k] = v
		}
		s.peerHas[t] = held
	case *v1alpha1.SyncMessage_Push:
		return s.receive(ctx, m.Push)
	case *v1alpha1.SyncMessage_Ack:
		t := resource.Type(m.Ack.GetType())
		if !s.sends[t] {
			return fmt.Errorf("%w: peer acknowledged %s, which this end does not send", ErrProtocol, shorten(string(t)))
		}
		key := string(t) + "/" + m.Ack.GetNonce()
		if !s.inFlight[key] {
			return nil // not a push of this session's: nothing to count
		}
		delete(s.inFlight, key)
		errs := m.Ack.GetErrors()
		s.Stats.acked(t, m.Ack.GetNonce(), errs)
		// A few lines per ACK, however many it refuses.
		const logged = 10
		for _, e := range errs[:min(len(errs), logged)] {
			why := e.GetMessage()
			if len(why) > maxReason {
				why = why[:maxReason] + "…"
			}
			s.cfg.Log.Warn("peer refused a resource", "type", t, "key", shorten(e.GetKey()), "reason", why)
		}
		if len(errs) > logged {
			s.cfg.Log.Warn("peer refused more resources", "type", t, "more", len(errs)-logged)
		}
	case *v1alpha1.SyncMessage_Heartbeat:
	case *v1alpha1.SyncMessage_Hello:
		return fmt.Errorf("%w: a second hello", ErrProtocol)
	default:
		return fmt.Errorf("%w: empty or unknown message", ErrProtocol)
	}
	return nil
}

// shorten quotes s, cut to a length fit for a log line or an error.
func shorten(s string) string {
	const most = 64
	if len(s) <= most {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:most], len(s))
}

func (s *Session) receive(ctx context.Context, p *v1alpha1.Push) error {
	t := resource.Type(p.GetType())
	ack := &v1alpha1.Ack{Type: p.GetType(), Nonce: p.GetNonce()}
	// The ACK must fit a message whatever the push held: once reasons
	// would take it over, further refusals carry only their key. Only a
	// push of many tiny resources, all refused, gets there.
	size, budget := len(ack.Type)+len(ack.Nonce), s.cfg.MaxMessageSize-envelope
	nack := func(key, why string) {
		if len(why) > maxReason {
			why = why[:maxReason] + "…"
		}
		n := len(key) + len(why) + 8
		if size+n > budget {
			why, n = "", len(key)+8
		}
		size += n
		ack.Errors = append(ack.Errors, &v1alpha1.ResourceError{Key: key, Message: why})
	}
	if !s.receives[t] {
		why := fmt.Sprintf("type %s is not accepted from this peer", shorten(string(t)))
		for _, r := range p.GetResources() {
			nack(WireKey(r.GetMesh(), r.GetName()), why)
		}
		s.Stats.refused(t, len(ack.Errors))
	} else {
		refused, err := s.ep.Apply(ctx, t, p.GetResources(), p.GetRemoved())
		if err != nil {
			return fmt.Errorf("applying %s: %w", t, err)
		}
		for key, why := range refused {
			nack(key, why)
		}
		largest := 0
		for _, r := range p.GetResources() {
			largest = max(largest, proto.Size(r))
		}
		s.Stats.received(t, len(p.GetResources())+len(p.GetRemoved()), len(refused), proto.Size(p), largest)
	}
	s.owe(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Ack{Ack: ack}})
	return nil
}
