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
type TypeStats struct {
	Sent, Acked, Nacked, Received, Refused uint64
	LastAckedNonce                         string
	// Subscribed is set once the peer subscribed to the type and was sent
	// its difference.
	Subscribed bool
}

// Stats is a session's counters, safe for concurrent reads.
type unacked struct {
	at time.Time
	n  int
}

type Stats struct {
	mu          sync.Mutex
	types       map[resource.Type]*TypeStats
	unacked     map[string]unacked
	connected   time.Time
	lastSeen    time.Time
	lastAckTime time.Duration
}

func newStats() *Stats {
	now := time.Now()
	return &Stats{types: map[resource.Type]*TypeStats{}, unacked: map[string]unacked{}, connected: now, lastSeen: now}
}

func (s *Stats) of(t resource.Type) *TypeStats {
	ts := s.types[t]
	if ts == nil {
		ts = &TypeStats{}
		s.types[t] = ts
	}
	return ts
}

func (s *Stats) seen() {
	s.mu.Lock()
	s.lastSeen = time.Now()
	s.mu.Unlock()
}

func (s *Stats) sent(t resource.Type, nonce string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.of(t).Sent += uint64(n)
	s.unacked[string(t)+"/"+nonce] = unacked{at: time.Now(), n: n}
}

func (s *Stats) acked(t resource.Type, nonce string, errs []*v1alpha1.ResourceError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.of(t)
	key := string(t) + "/" + nonce
	if u, ok := s.unacked[key]; ok {
		s.lastAckTime = time.Since(u.at)
		delete(s.unacked, key)
		ts.Acked += uint64(max(0, u.n-len(errs)))
	}
	ts.LastAckedNonce = nonce
	ts.Nacked += uint64(len(errs))
}

func (s *Stats) received(t resource.Type, n, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.of(t)
	ts.Received += uint64(n)
	ts.Refused += uint64(refused)
}

func (s *Stats) subscribed(t resource.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.of(t).Subscribed = true
}

func (s *Stats) refused(t resource.Type, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.of(t).Refused += uint64(n)
}

// Snapshot is a copy of a session's counters.
type Snapshot struct {
	Types     map[resource.Type]TypeStats
	Connected time.Time
	LastSeen  time.Time
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
	out := Snapshot{Types: map[resource.Type]TypeStats{}, Connected: s.connected, LastSeen: s.lastSeen, LastAckLatency: s.lastAckTime}
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
