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
	// error means the push could not be stored at all (the store is
	// unavailable): the session ends and the next one reconciles. A
	// resource that can never be stored (invalid, too large, over a cap)
	// must be refused, not failed, or the peer would send the same push
	// again on every reconnect.
	Apply(ctx context.Context, t resource.Type, upserts []*v1alpha1.WireResource, removed []string) (map[string]string, error)
}

// KeyedEndpoint is an Endpoint that can say what it sends of a few
// resources, by wire key, so that a change of a few resources it was told
// of (Session.ChangedKeys) is pushed without comparing every resource the
// peer holds: the cost of a change does not grow with how many there are.
type KeyedEndpoint interface {
	Endpoint
	// DesiredKeys returns, of keys, those this end sends of t now, by wire
	// key; a key it does not return is one the peer must not hold. It
	// returns ErrFullCompare when it cannot tell for t: the session
	// compares everything, as after Changed.
	DesiredKeys(ctx context.Context, t resource.Type, keys []string) (map[string]*v1alpha1.WireResource, error)
}

// ErrFullCompare: a KeyedEndpoint cannot compute a type by keys.
var ErrFullCompare = errors.New("this type is compared whole")

// maxChangedKeys is how many changed keys of a type a session gathers
// before it compares the type whole instead.
const maxChangedKeys = 4096

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

// Bounds on what one session holds for its peer. They keep a session's
// memory independent of how much the peer sends, and, together, keep two
// ends that push at once from deadlocking; Run explains why.
const (
	// recvQueue is how many messages read from the stream may wait to be
	// handled. When it is full the reader stops calling Recv, and gRPC's
	// per-stream flow control stops the peer's sends.
	recvQueue = 4
	// pushWindow is how many of this end's pushes may await the peer's
	// ACK; further pushes wait in this end's queue.
	pushWindow = 4
	// maxOwed is how many control messages (ACKs, subscriptions, a
	// heartbeat) may wait to be sent. While that many wait, the session
	// handles nothing more of what it reads. It is well above what a peer
	// keeping to pushWindow can make this end owe (one ACK per push in
	// flight, this end's subscriptions, one heartbeat), so such a peer
	// never makes this end stop reading.
	maxOwed = 16
)

// Session runs the delta sync of one stream until ctx ends or the stream
// breaks.
type Session struct {
	cfg    SessionConfig
	ep     Endpoint
	stream Stream
	Stats  *Stats
	// changedMu guards changed, whole and keys; signal wakes Run when
	// changed is non-empty. changed are the types to flush; whole the
	// types to compare whole at their next flush, keys the wire keys to
	// compare of the others. A flush takes whole and keys; changed only
	// schedules it.
	changedMu sync.Mutex
	changed   map[resource.Type]bool
	whole     map[resource.Type]bool
	keys      map[resource.Type]map[string]bool
	signal    chan struct{}

	sends    map[resource.Type]bool
	receives map[resource.Type]bool
	// The rest is Run's alone.
	// peerHas is what the peer holds, per type, by wire key: from its
	// Subscribe, then from what was sent. Nil until the peer subscribed.
	peerHas map[resource.Type]map[string]string
	nonce   uint64
	// owed are control messages to send, in order; pushes are this end's
	// pushes not yet sent, in order; inFlight are the type/nonce of pushes
	// sent and not yet acknowledged. Control messages go first, pushes
	// only while fewer than pushWindow are in flight.
	owed          []*v1alpha1.SyncMessage
	heartbeatOwed bool
	pushes        []*v1alpha1.SyncMessage
	inFlight      map[string]bool
	// out feeds the goroutine that sends, so Run never blocks on the
	// transport and returns when its context ends even while a Send blocks.
	out chan *v1alpha1.SyncMessage
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
		cfg: cfg, ep: ep, stream: stream, Stats: newStats(resource.Types),
		changed:  map[resource.Type]bool{},
		whole:    map[resource.Type]bool{},
		keys:     map[resource.Type]map[string]bool{},
		out:      make(chan *v1alpha1.SyncMessage),
		signal:   make(chan struct{}, 1),
		sends:    map[resource.Type]bool{},
		receives: map[resource.Type]bool{},
		peerHas:  map[resource.Type]map[string]string{},
		inFlight: map[string]bool{},
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
	s.whole[t] = true
	delete(s.keys, t)
	s.changedMu.Unlock()
	s.wake()
}

// ChangedKeys tells the session that of t, only the resources with these
// wire keys may have changed (been added, updated or removed). With a
// KeyedEndpoint only they are compared; otherwise, or past maxChangedKeys
// gathered, it is Changed.
func (s *Session) ChangedKeys(t resource.Type, keys ...string) {
	if len(keys) == 0 {
		return
	}
	s.changedMu.Lock()
	s.changed[t] = true
	if !s.whole[t] {
		ks := s.keys[t]
		if ks == nil {
			ks = map[string]bool{}
			s.keys[t] = ks
		}
		for _, k := range keys {
			ks[k] = true
		}
		if len(ks) > maxChangedKeys {
			s.whole[t] = true
			delete(s.keys, t)
		}
	}
	s.changedMu.Unlock()
	s.wake()
}

func (s *Session) wake() {
	select {
	case s.signal <- struct{}{}:
	default: // a wake-up is already pending; it will see the change
	}
}

// takeDirty returns and clears what a flush of t must compare: whole, or
// the keys.
func (s *Session) takeDirty(t resource.Type) (whole bool, keys []string) {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	whole = s.whole[t]
	delete(s.whole, t)
	for k := range s.keys[t] {
		keys = append(keys, k)
	}
	delete(s.keys, t)
	return whole, keys
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
//
// Memory is bounded whatever the peer does: at most recvQueue messages
// read and not yet handled (then reading stops and gRPC flow control holds
// the peer back), at most maxOwed control messages, each under
// MaxMessageSize, and this end's own pushes from one flush at a time.
//
// Two ends pushing at once never deadlock. Were both blocked in Send, each
// waiting for the other to read, neither would read again. Here:
//   - Run itself never waits on the transport: it hands a message to the
//     sending goroutine only when that goroutine is free (a select case), and
//     otherwise goes on handling what it reads. Handling waits only on this
//     end's endpoint (Apply, Desired), never on the peer.
//   - Run stops handling what it reads only while maxOwed control messages
//     wait to be sent. It sends at most pushWindow pushes the peer has not
//     acknowledged, and an ACK answers each push, so a peer doing the same
//     never owes more than pushWindow ACKs plus a few control messages, below
//     maxOwed: two such ends always keep reading, so every Send completes.
//   - Against a peer that ignores the window or never reads, this end stops
//     reading once it owes maxOwed messages, which holds the peer back
//     instead of queueing without limit.
func (s *Session) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := s.receiveAll(ctx)
	sendErr := s.sendAll(ctx)
	for _, t := range s.cfg.Receive {
		held, err := s.ep.Held(ctx, t)
		if err != nil {
			return fmt.Errorf("reading held %s: %w", t, err)
		}
		s.owe(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Subscribe{
			Subscribe: &v1alpha1.Subscribe{Type: string(t), InitialVersions: held},
		}})
	}

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	// Per type, a change goes out at once when that type was quiet for
	// Debounce, and changes that come in bursts are gathered for up to
	// Debounce. Types do not delay each other.
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
	// waiting are types to flush once this end's queued pushes are sent:
	// a flush computes its difference only when none are queued, so a slow
	// peer gets changes gathered, not a growing queue.
	waiting := map[resource.Type]bool{}
	flushTypes := func(types ...resource.Type) error {
		now := time.Now()
		for _, t := range types {
			waiting[t] = true
			delete(due, t)
			lastFlush[t] = now
		}
		if len(s.pushes) > 0 || len(waiting) == 0 {
			return nil
		}
		batch := waiting
		waiting = map[resource.Type]bool{}
		return s.flush(ctx, batch)
	}
	for {
		var out chan<- *v1alpha1.SyncMessage
		next := s.nextOut()
		if next != nil {
			out = s.out
		}
		reading := in
		if len(s.owed) >= maxOwed {
			reading = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-sendErr:
			return err
		case out <- next:
			s.handedOver(next)
			if len(s.pushes) == 0 {
				if err := flushTypes(); err != nil {
					return err
				}
			}
		case r := <-reading:
			if r.err != nil {
				return r.err
			}
			s.Stats.seen()
			if err := s.handle(ctx, r.msg); err != nil {
				return err
			}
			if sub := r.msg.GetSubscribe(); sub != nil {
				// A subscription is answered at once, with everything.
				s.Changed(resource.Type(sub.GetType()))
				if err := flushTypes(resource.Type(sub.GetType())); err != nil {
					return err
				}
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
			if !s.heartbeatOwed { // one waiting heartbeat says enough
				s.heartbeatOwed = true
				s.owe(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Heartbeat{
					Heartbeat: &v1alpha1.Heartbeat{Time: timestamppb.Now()},
				}})
			}
		}
	}
}

// owe queues a control message.
func (s *Session) owe(m *v1alpha1.SyncMessage) { s.owed = append(s.owed, m) }

// nextOut is the message to send next, if any may go now.
func (s *Session) nextOut() *v1alpha1.SyncMessage {
	if len(s.owed) > 0 {
		return s.owed[0]
	}
	if len(s.pushes) > 0 && len(s.inFlight) < pushWindow {
		return s.pushes[0]
	}
	return nil
}

// handedOver takes m, which nextOut returned, off its queue.
func (s *Session) handedOver(m *v1alpha1.SyncMessage) {
	if len(s.owed) > 0 && s.owed[0] == m {
		s.owed[0] = nil
		s.owed = s.owed[1:]
		if m.GetHeartbeat() != nil {
			s.heartbeatOwed = false
		}
		return
	}
	s.pushes[0] = nil
	s.pushes = s.pushes[1:]
	p := m.GetPush()
	s.inFlight[p.GetType()+"/"+p.GetNonce()] = true
}

// sendAll sends what Run hands it, in order, until ctx ends or a Send
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

// flush pushes the difference between what this end has and what the peer
// holds, for every dirty type the peer subscribed to.
func (s *Session) flush(ctx context.Context, dirty map[resource.Type]bool) error {
	for t := range dirty {
		has, subscribed := s.peerHas[t]
		if !subscribed {
			continue // sent in full when the peer subscribes
		}
		delete(dirty, t)
		upserts, removed, err := s.difference(ctx, t, has)
		if err != nil {
			return err
		}
		s.push(t, upserts, removed)
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

// difference is what the peer, holding has, must be sent of t: of the
// keys changed since the last flush when the endpoint can compute them
// (KeyedEndpoint), else of everything.
func (s *Session) difference(ctx context.Context, t resource.Type, has map[string]string) (upserts []*v1alpha1.WireResource, removed []string, err error) {
	whole, keys := s.takeDirty(t)
	if !whole && len(keys) == 0 {
		return nil, nil, nil // taken by an earlier flush
	}
	if keyed, ok := s.ep.(KeyedEndpoint); ok && !whole {
		desired, err := keyed.DesiredKeys(ctx, t, keys)
		switch {
		case err == nil:
			for _, key := range keys {
				r, ok := desired[key]
				switch {
				case ok && has[key] != r.GetVersion():
					upserts = append(upserts, r)
				case !ok:
					if _, held := has[key]; held {
						removed = append(removed, key)
					}
				}
			}
			return upserts, removed, nil
		case !errors.Is(err, ErrFullCompare):
			return nil, nil, fmt.Errorf("reading %s to send: %w", t, err)
		}
	}
	desired, err := s.ep.Desired(ctx, t)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s to send: %w", t, err)
	}
	for key, r := range desired {
		if has[key] != r.GetVersion() {
			upserts = append(upserts, r)
		}
	}
	for key := range has {
		if _, ok := desired[key]; !ok {
			removed = append(removed, key)
		}
	}
	return upserts, removed, nil
}

// push queues changes in messages that each stay under MaxMessageSize.
func (s *Session) push(t resource.Type, upserts []*v1alpha1.WireResource, removed []string) {
	limit := s.cfg.MaxMessageSize - envelope
	for len(upserts) > 0 || len(removed) > 0 {
		s.nonce++
		p := &v1alpha1.Push{Type: string(t), Nonce: strconv.FormatUint(s.nonce, 10)}
		size, largest := 0, 0
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
			largest = max(largest, n-8)
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
		s.Stats.sent(t, p.GetNonce(), len(p.Resources)+len(p.Removed), proto.Size(p), largest)
		s.pushes = append(s.pushes, &v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: p}})
	}
}
