package kds

import (
	"sync"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// TypeStats counts one type's traffic in a session: resources (and
// removals) sent, acknowledged and refused by the peer; received from the
// peer and refused by this end; and the nonce of the last acknowledged push.
// Its JSON keys (a zone's GET /zone) are camelCase like every API's.
type TypeStats struct {
	Sent           uint64 `json:"sent"`
	Acked          uint64 `json:"acked"`
	Nacked         uint64 `json:"nacked"`
	Received       uint64 `json:"received"`
	Refused        uint64 `json:"refused"`
	LastAckedNonce string `json:"lastAckedNonce"`
	// Subscribed is set once the peer subscribed to the type and was sent
	// its difference.
	Subscribed bool `json:"subscribed"`
	// SentBytes and ReceivedBytes are the encoded sizes of the pushes of
	// the type sent and received.
	SentBytes     uint64 `json:"sentBytes"`
	ReceivedBytes uint64 `json:"receivedBytes"`
	// LargestPushBytes is the largest push of the type sent or received,
	// LargestResourceBytes the largest single resource in one: what the
	// message limit (kds.maxMessageSize) must hold.
	LargestPushBytes     uint64 `json:"largestPushBytes"`
	LargestResourceBytes uint64 `json:"largestResourceBytes"`
}

// sized records one push of push bytes whose largest resource has
// resource bytes.
func (ts *TypeStats) sized(push, resource int) {
	ts.LargestPushBytes = max(ts.LargestPushBytes, uint64(push))
	ts.LargestResourceBytes = max(ts.LargestResourceBytes, uint64(resource))
}

type unacked struct {
	at time.Time
	n  int
}

// Stats is a session's counters, safe for concurrent reads. It keeps
// counters only for registered types: a type name a peer makes up is
// counted in one counter for all of them, so a peer cannot grow it.
type Stats struct {
	mu          sync.Mutex
	registered  map[resource.Type]bool
	types       map[resource.Type]*TypeStats
	unknown     uint64
	unacked     map[string]unacked
	connected   time.Time
	lastSeen    time.Time
	lastAckTime time.Duration
}

func newStats(reg *resource.Registry) *Stats {
	now := time.Now()
	s := &Stats{registered: map[resource.Type]bool{}, types: map[resource.Type]*TypeStats{}, unacked: map[string]unacked{}, connected: now, lastSeen: now}
	for _, d := range reg.All() {
		s.registered[d.Type] = true
	}
	return s
}

// of returns t's counters; those of an unregistered type are not kept.
func (s *Stats) of(t resource.Type) *TypeStats {
	if !s.registered[t] {
		return &TypeStats{}
	}
	ts := s.types[t]
	if ts == nil {
		ts = &TypeStats{}
		s.types[t] = ts
	}
	return ts
}

// LastSeen is when a message of the peer was last handled (the session's
// start before the first).
func (s *Stats) LastSeen() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeen
}

func (s *Stats) seen() {
	s.mu.Lock()
	s.lastSeen = time.Now()
	s.mu.Unlock()
}

func (s *Stats) sent(t resource.Type, nonce string, n, bytes, largest int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.of(t)
	ts.Sent += uint64(n)
	ts.SentBytes += uint64(bytes)
	ts.sized(bytes, largest)
	s.unacked[string(t)+"/"+nonce] = unacked{at: time.Now(), n: n}
}

func (s *Stats) acked(t resource.Type, nonce string, errs []*v1alpha1.ResourceError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := string(t) + "/" + nonce
	u, ok := s.unacked[key]
	if !ok {
		return // not a push of this session's
	}
	ts := s.of(t)
	s.lastAckTime = time.Since(u.at)
	delete(s.unacked, key)
	nacked := min(len(errs), u.n)
	ts.Acked += uint64(u.n - nacked)
	ts.Nacked += uint64(nacked)
	ts.LastAckedNonce = nonce
}

func (s *Stats) received(t resource.Type, n, refused, bytes, largest int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.of(t)
	ts.Received += uint64(n)
	ts.Refused += uint64(refused)
	ts.ReceivedBytes += uint64(bytes)
	ts.sized(bytes, largest)
}

func (s *Stats) subscribed(t resource.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.of(t).Subscribed = true
}

// refused counts resources of a type this end does not accept.
func (s *Stats) refused(t resource.Type, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.registered[t] {
		s.unknown += uint64(n)
		return
	}
	s.of(t).Refused += uint64(n)
}

// Snapshot is a copy of a session's counters.
type Snapshot struct {
	Types map[resource.Type]TypeStats
	// RefusedUnknown counts resources refused because their type is not
	// registered at all.
	RefusedUnknown uint64
	Connected      time.Time
	LastSeen       time.Time
	// SyncLag is how long the oldest unacknowledged push has waited; zero
	// when the peer has acknowledged everything.
	SyncLag time.Duration
	// LastAckLatency is the round trip of the latest acknowledged push.
	LastAckLatency time.Duration
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Snapshot{Types: map[resource.Type]TypeStats{}, RefusedUnknown: s.unknown, Connected: s.connected, LastSeen: s.lastSeen, LastAckLatency: s.lastAckTime}
	for t, ts := range s.types {
		out.Types[t] = *ts
	}
	for _, u := range s.unacked {
		if lag := time.Since(u.at); lag > out.SyncLag {
			out.SyncLag = lag
		}
	}
	return out
}
