package kds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Endpoint is one end's data for one session.
type Endpoint interface {
	// Desired returns what this end sends of t now, by wire key.
	Desired(ctx context.Context, t resource.Type) (map[string]*v1alpha1.WireResource, error)
	// Held returns the content versions of what this end holds of t, as
	// received from the peer, by wire key.
	Held(ctx context.Context, t resource.Type) (map[string]string, error)
	// Apply stores what the peer sent. Refused resources are returned by
	// wire key with the reason (they are NACKed, the rest applied). An
	// error means nothing could be stored: the session ends and the next
	// one reconciles.
	Apply(ctx context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) (map[string]string, error)
}

// Stream is a Sync stream, from either end.
type Stream interface {
	Send(*v1alpha1.SyncMessage) error
	Recv() (*v1alpha1.SyncMessage, error)
}

// SessionConfig configures one session.
type SessionConfig struct {
	// Send and Receive are the types this end sends and accepts.
	Send, Receive []resource.Type
	// MaxMessageSize bounds every message this end sends.
	MaxMessageSize int
	// Debounce bounds how often changes are pushed: a change after a quiet
	// interval goes out at once; a burst is gathered for up to Debounce.
	Debounce time.Duration
	// Heartbeat is how often this end tells the peer it is alive.
	Heartbeat time.Duration
	Log       *slog.Logger
}

// Defaults for SessionConfig.
const (
	DefaultMaxMessageSize = 4 << 20
	DefaultDebounce       = 20 * time.Millisecond
	DefaultHeartbeat      = 10 * time.Second
	// envelope is room left in each message for everything but resources.
	envelope = 64 << 10
)

// ErrProtocol marks a peer that broke the protocol.
var ErrProtocol = errors.New("kds protocol violation")

// Session runs the delta sync of one stream until ctx ends or the stream
// breaks.
type Session struct {
	cfg    SessionConfig
	ep     Endpoint
	stream Stream
	Stats  *Stats
	// changedMu guards changed; signal wakes Run when it is non-empty.
	changedMu sync.Mutex
	changed   map[resource.Type]bool
	signal    chan struct{}

	sends    map[resource.Type]bool
	receives map[resource.Type]bool
	// peerHas is what the peer holds, per type, by wire key: from its
	// Subscribe, then from what was sent. Nil until the peer subscribed.
	peerHas map[resource.Type]map[string]string
	nonce   uint64
	// out feeds the goroutine that sends, so Run returns when its context
	// ends even while the transport blocks a Send; sendErr reports its end.
	out     chan *v1alpha1.SyncMessage
	sendErr <-chan error
}

// NewSession prepares a session on stream.
func NewSession(stream Stream, ep Endpoint, cfg SessionConfig) *Session {
	if cfg.MaxMessageSize <= envelope {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		cfg: cfg, ep: ep, stream: stream, Stats: newStats(),
		changed:  map[resource.Type]bool{},
		out:      make(chan *v1alpha1.SyncMessage),
		signal:   make(chan struct{}, 1),
		sends:    map[resource.Type]bool{},
		receives: map[resource.Type]bool{},
		peerHas:  map[resource.Type]map[string]string{},
	}
	for _, t := range cfg.Send {
		s.sends[t] = true
	}
	for _, t := range cfg.Receive {
		s.receives[t] = true
	}
	return s
}

// Changed tells the session that what it sends of t may have changed. It
// never blocks, and no change of any type is lost however many arrive.
func (s *Session) Changed(t resource.Type) {
	s.changedMu.Lock()
	s.changed[t] = true
	s.changedMu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default: // a wake-up is already pending; it will see t
	}
}

// takeChanged returns and clears the types changed since the last call.
func (s *Session) takeChanged() []resource.Type {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	out := make([]resource.Type, 0, len(s.changed))
	for t := range s.changed {
		out = append(out, t)
		delete(s.changed, t)
	}
	return out
}

// Run subscribes to what this end receives and then serves the stream.
func (s *Session) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in, recvErr := s.receiveAll(ctx)
	s.sendErr = s.sendAll(ctx)
	for _, t := range s.cfg.Receive {
		held, err := s.ep.Held(ctx, t)
		if err != nil {
			return fmt.Errorf("reading held %s: %w", t, err)
		}
		if err := s.send(ctx, &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Subscribe{
			Subscribe: &v1alpha1.Subscribe{Type: string(t), InitialVersions: held},
		}}); err != nil {
			return err
		}
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	// Per type, a change goes out at once when that type was quiet for
	// Debounce, and changes that come in bursts are gathered for up to
	// Debounce. Types do not delay each other.
	dirty := map[resource.Type]bool{}
	lastFlush := map[resource.Type]time.Time{}
	due := map[resource.Type]time.Time{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func() {
		var next time.Time
		for _, at := range due {
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
	flushTypes := func(types ...resource.Type) error {
		batch := map[resource.Type]bool{}
		now := time.Now()
		for _, t := range types {
			batch[t] = true
			delete(dirty, t)
			delete(due, t)
			lastFlush[t] = now
		}
		err := s.flush(ctx, batch)
		for t := range batch { // not yet subscribed: keep for later
			dirty[t] = true
		}
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case err := <-s.sendErr:
			return err
		case msg := <-in:
			s.Stats.seen()
			if sub := msg.GetSubscribe(); sub != nil {
				// A subscription is answered at once.
				if err := s.handle(ctx, msg, map[resource.Type]bool{}); err != nil {
					return err
				}
				if err := flushTypes(resource.Type(sub.GetType())); err != nil {
					return err
				}
				continue
			}
			if err := s.handle(ctx, msg, dirty); err != nil {
				return err
			}
		case <-s.signal:
			var now []resource.Type
			for _, t := range s.takeChanged() {
				if _, pending := due[t]; pending || !s.sends[t] {
					continue
				}
				if time.Since(lastFlush[t]) >= s.cfg.Debounce {
					now = append(now, t)
					continue
				}
				dirty[t] = true
				due[t] = lastFlush[t].Add(s.cfg.Debounce)
			}
			if len(now) > 0 {
				if err := flushTypes(now...); err != nil {
					return err
				}
			}
			arm()
		case <-timer.C:
			var ready []resource.Type
			for t, at := range due {
				if !time.Now().Before(at) {
					ready = append(ready, t)
				}
			}
			if err := flushTypes(ready...); err != nil {
				return err
			}
			arm()
		case <-heartbeat.C:
			if err := s.send(ctx, &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Heartbeat{
				Heartbeat: &v1alpha1.Heartbeat{Time: timestamppb.Now()},
			}}); err != nil {
				return err
			}
		}
	}
}

// sendAll sends what send queues, in order, until ctx ends or a Send
// fails. A Send the transport blocks outlives Run: the stream's end (the
// RPC returning, the connection closing) releases it.
func (s *Session) sendAll(ctx context.Context) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-s.out:
				if err := s.stream.Send(m); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	return errc
}

// send queues m for sendAll.
func (s *Session) send(ctx context.Context, m *v1alpha1.SyncMessage) error {
	select {
	case s.out <- m:
		return nil
	case err := <-s.sendErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// receiveAll reads the stream until it breaks or ctx ends, queueing what
// it reads for in, then the error for recvErr. Reading never waits for
// handling: were both ends blocked in Send, each waiting for the other to
// read, the stream would deadlock once both directions' buffers filled.
func (s *Session) receiveAll(ctx context.Context) (in <-chan *v1alpha1.SyncMessage, recvErr <-chan error) {
	out, errc := make(chan *v1alpha1.SyncMessage), make(chan error, 1)
	type item struct {
		msg *v1alpha1.SyncMessage
		err error
	}
	read := make(chan item)
	go func() {
		for {
			msg, err := s.stream.Recv()
			select {
			case read <- item{msg, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		var queue []*v1alpha1.SyncMessage
		var failed error
		for {
			if failed != nil && len(queue) == 0 {
				errc <- failed
				return
			}
			var next chan<- *v1alpha1.SyncMessage
			if len(queue) > 0 {
				next = out
			}
			reading := read
			if failed != nil {
				reading = nil
			}
			var first *v1alpha1.SyncMessage
			if len(queue) > 0 {
				first = queue[0]
			}
			select {
			case it := <-reading:
				if it.err != nil {
					failed = it.err
				} else {
					queue = append(queue, it.msg)
				}
			case next <- first:
				queue[0] = nil
				queue = queue[1:]
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

func (s *Session) handle(ctx context.Context, msg *v1alpha1.SyncMessage, dirty map[resource.Type]bool) error {
	switch m := msg.GetMessage().(type) {
	case *v1alpha1.SyncMessage_Subscribe:
		t := resource.Type(m.Subscribe.GetType())
		if !s.sends[t] {
			return fmt.Errorf("%w: peer subscribed to %q, which this end does not send", ErrProtocol, t)
		}
		held := map[string]string{}
		for k, v := range m.Subscribe.GetInitialVersions() {
			held[k] = v
		}
		s.peerHas[t] = held
		dirty[t] = true
	case *v1alpha1.SyncMessage_Push:
		return s.receive(ctx, m.Push)
	case *v1alpha1.SyncMessage_Ack:
		s.Stats.acked(resource.Type(m.Ack.GetType()), m.Ack.GetNonce(), m.Ack.GetErrors())
		for _, e := range m.Ack.GetErrors() {
			s.cfg.Log.Warn("peer refused a resource", "type", m.Ack.GetType(), "key", e.GetKey(), "reason", e.GetMessage())
		}
	case *v1alpha1.SyncMessage_Heartbeat:
	case *v1alpha1.SyncMessage_Hello:
		return fmt.Errorf("%w: a second hello", ErrProtocol)
	default:
		return fmt.Errorf("%w: empty or unknown message", ErrProtocol)
	}
	return nil
}

func (s *Session) receive(ctx context.Context, p *v1alpha1.Push) error {
	t := resource.Type(p.GetType())
	ack := &v1alpha1.Ack{Type: p.GetType(), Nonce: p.GetNonce()}
	if !s.receives[t] {
		for _, r := range p.GetResources() {
			ack.Errors = append(ack.Errors, &v1alpha1.ResourceError{
				Key: WireKey(r.GetMesh(), r.GetName()), Message: fmt.Sprintf("%s is not accepted from this peer", t)})
		}
		s.Stats.refused(t, len(ack.Errors))
	} else {
		refused, err := s.ep.Apply(ctx, t, p.GetResources(), p.GetRemoved())
		if err != nil {
			return fmt.Errorf("applying %s: %w", t, err)
		}
		for key, why := range refused {
			ack.Errors = append(ack.Errors, &v1alpha1.ResourceError{Key: key, Message: why})
		}
		s.Stats.received(t, len(p.GetResources())+len(p.GetRemoved()), len(refused))
	}
	return s.send(ctx, &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Ack{Ack: ack}})
}

// flush pushes the difference between what this end has and what the peer
// holds, for every dirty type the peer subscribed to.
func (s *Session) flush(ctx context.Context, dirty map[resource.Type]bool) error {
	for t := range dirty {
		has, subscribed := s.peerHas[t]
		if !subscribed {
			continue // sent in full when the peer subscribes
		}
		delete(dirty, t)
		desired, err := s.ep.Desired(ctx, t)
		if err != nil {
			return fmt.Errorf("reading %s to send: %w", t, err)
		}
		var upserts []*v1alpha1.WireResource
		for key, r := range desired {
			if has[key] != r.GetVersion() {
				upserts = append(upserts, r)
			}
		}
		var removed []string
		for key := range has {
			if _, ok := desired[key]; !ok {
				removed = append(removed, key)
			}
		}
		if err := s.push(ctx, t, upserts, removed); err != nil {
			return err
		}
		for _, r := range upserts {
			has[WireKey(r.GetMesh(), r.GetName())] = r.GetVersion()
		}
		for _, key := range removed {
			delete(has, key)
		}
		s.Stats.subscribed(t)
	}
	return nil
}

// push sends changes in messages that each stay under MaxMessageSize.
func (s *Session) push(ctx context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) error {
	limit := s.cfg.MaxMessageSize - envelope
	for len(upserts) > 0 || len(removed) > 0 {
		s.nonce++
		p := &v1alpha1.Push{Type: string(t), Nonce: strconv.FormatUint(s.nonce, 10)}
		size := 0
		for len(upserts) > 0 {
			n := proto.Size(upserts[0]) + 8
			if n > limit {
				s.cfg.Log.Error("resource too large to sync: skipped", "type", t, "name", upserts[0].GetName(), "bytes", n)
				upserts = upserts[1:]
				continue
			}
			if size+n > limit {
				break
			}
			p.Resources = append(p.Resources, upserts[0])
			size += n
			upserts = upserts[1:]
		}
		for len(removed) > 0 {
			n := len(removed[0]) + 8
			if n > limit {
				// Only a peer's subscription can hold such a key; it fits
				// no message, and skipping it keeps this loop finite.
				s.cfg.Log.Error("removed key too large to sync: skipped", "type", t, "bytes", n)
				removed = removed[1:]
				continue
			}
			if size+n > limit {
				break
			}
			p.Removed = append(p.Removed, removed[0])
			size += n
			removed = removed[1:]
		}
		if len(p.Resources) == 0 && len(p.Removed) == 0 {
			continue
		}
		s.Stats.sent(t, p.GetNonce(), len(p.Resources)+len(p.Removed))
		if err := s.send(ctx, &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: p}}); err != nil {
			return err
		}
	}
	return nil
}
