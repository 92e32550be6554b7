package zone

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// election decides which of a zone's replicas writes: its local
// Dataplanes, its ZoneIngress and what the global sends, over the one
// connection to the global. Every replica serves DNS, xDS and the API.
type election interface {
	// Run campaigns until ctx ends and runs lead while this replica
	// leads, with a context that ends when it stops leading; again for
	// every later term. It returns lead's error if lead fails while
	// leading.
	Run(ctx context.Context, lead func(context.Context) error) error
	// Identity names this replica; Holder names the one that leads, as
	// far as this replica knows.
	Identity() string
	Holder() string
	// Leading reports whether lead runs here.
	Leading() bool
}

// soleReplica is the election of a mode with one replica per zone: it
// always leads.
type soleReplica struct{ leading atomic.Bool }

func (s *soleReplica) Run(ctx context.Context, lead func(context.Context) error) error {
	s.leading.Store(true)
	defer s.leading.Store(false)
	return lead(ctx)
}

func (s *soleReplica) Identity() string { return "" }
func (s *soleReplica) Holder() string   { return "" }
func (s *soleReplica) Leading() bool    { return s.leading.Load() }

// LeaderStatus is, in GET /zone, a replica's part in the zone's leader
// election (Kubernetes mode).
type LeaderStatus struct {
	// Leading is set while this replica writes.
	Leading bool `json:"leading"`
	// Identity names this replica in the Lease.
	Identity string `json:"identity"`
	// Holder names the replica the Lease names as leader; empty while
	// none does.
	Holder string `json:"holder,omitempty"`
}

// leaderStatus is what GET /zone reports of e: nil for a sole replica.
func leaderStatus(e election) *LeaderStatus {
	if _, sole := e.(*soleReplica); sole || e == nil {
		return nil
	}
	return &LeaderStatus{Leading: e.Leading(), Identity: e.Identity(), Holder: e.Holder()}
}

// registerLeaderMetric exports atoll_zone_leader: 1 while this replica
// writes, 0 while it follows.
func registerLeaderMetric(reg prometheus.Registerer, e election) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atoll_zone_leader",
		Help: "1 while this replica of the zone leads (writes and talks to the global), 0 while it follows.",
	}, func() float64 {
		if e.Leading() {
			return 1
		}
		return 0
	}))
}
