package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ElectionConfig configures an Election.
type ElectionConfig struct {
	// Client reads and writes the Lease. Give the election a client of its
	// own, so that renewals never wait behind the controller's writes.
	Client k8s.Interface
	// Namespace and Name locate the Lease.
	Namespace, Name string
	// Identity names this replica in the Lease; see NewIdentity.
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's leader
	// election timings: LeaseDuration > RenewDeadline > 1.2 RetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Log defaults to a logger that discards.
	Log *slog.Logger
}

// Election runs a function only while this replica holds a Lease, so that
// of several replicas one alone writes. It campaigns again after losing
// the Lease, for as long as Run runs.
type Election struct {
	cfg ElectionConfig
	log *slog.Logger

	leading atomic.Bool
	// elector is the current term's, for the holder's name.
	elector atomic.Pointer[leaderelection.LeaderElector]
}

// NewElection checks cfg and returns an election; Run campaigns.
func NewElection(cfg ElectionConfig) (*Election, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("leader election: ElectionConfig.Client is nil: pass a clientset")
	case cfg.Namespace == "" || cfg.Name == "":
		return nil, errors.New("leader election: the Lease needs a namespace and a name")
	case cfg.Identity == "":
		return nil, errors.New("leader election: ElectionConfig.Identity is empty: use NewIdentity")
	case cfg.LeaseDuration <= cfg.RenewDeadline || cfg.RenewDeadline <= cfg.RetryPeriod*6/5 || cfg.RetryPeriod <= 0:
		return nil, fmt.Errorf("leader election: want leaseDuration (%s) > renewDeadline (%s) > 1.2 retryPeriod (%s) > 0",
			cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Election{cfg: cfg, log: log.With("component", "leader-election", "lease", cfg.Namespace+"/"+cfg.Name)}, nil
}

// NewIdentity names this process in a Lease: the pod's name (POD_NAME,
// set from the downward API, else the host name, which is the pod's name
// in a pod) and a random suffix, so that a container restarted in the same
// pod never mistakes its predecessor's Lease for its own.
func NewIdentity() (string, error) {
	name := os.Getenv("POD_NAME")
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("leader election: naming this replica: set POD_NAME: %w", err)
		}
		name = host
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return "", fmt.Errorf("leader election: naming this replica: %w", err)
	}
	return name + "_" + hex.EncodeToString(suffix), nil
}

// Identity is this replica's name in the Lease.
func (e *Election) Identity() string { return e.cfg.Identity }

// Leading reports whether lead is running: this replica holds the Lease.
func (e *Election) Leading() bool { return e.leading.Load() }

// Holder is the identity the Lease last named as holder, as this replica
// saw it; empty when none holds it or before the first read.
func (e *Election) Holder() string {
	if le := e.elector.Load(); le != nil {
		return le.GetLeader()
	}
	return ""
}

// Run campaigns for the Lease until ctx ends, and runs lead, with a
// context that ends when the Lease is lost or ctx ends, each time it wins.
// The Lease is released (on a clean stop, or after lead failed) only once
// lead has returned, so no other replica writes while this one still
// does. An error of lead while it still leads ends Run with that error;
// losing the Lease does not: Run campaigns again.
func (e *Election) Run(ctx context.Context, lead func(context.Context) error) error {
	for ctx.Err() == nil {
		if err := e.term(ctx, lead); err != nil {
			return err
		}
	}
	return nil
}

// term campaigns once, leads until the Lease is lost or ctx ends, and
// returns once lead has returned and the Lease is released.
func (e *Election) term(ctx context.Context, lead func(context.Context) error) error {
	tctx, endTerm := context.WithCancel(ctx)
	defer endTerm()
	lock := &gatedLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.Name},
			Client:     e.cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
		},
		stopped: make(chan struct{}),
	}
	var leadErr error
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: e.cfg.LeaseDuration,
		RenewDeadline: e.cfg.RenewDeadline,
		RetryPeriod:   e.cfg.RetryPeriod,
		// A clean stop hands over at once rather than after LeaseDuration;
		// the lock holds the release back until lead has returned.
		ReleaseOnCancel: true,
		Name:            e.cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				defer close(lock.stopped)
				e.leading.Store(true)
				e.log.Info("leading: this replica writes", "identity", e.cfg.Identity)
				err := lead(lctx)
				e.leading.Store(false)
				if lctx.Err() == nil {
					// lead ended on its own: give the Lease up.
					leadErr = err
					endTerm()
				}
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				if identity != e.cfg.Identity {
					e.log.Info("following", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	e.elector.Store(le)
	le.Run(tctx)
	// Run returns without waiting for lead: wait here, when it started.
	if lock.held.Load() {
		<-lock.stopped
	}
	if leadErr != nil {
		return leadErr
	}
	if lock.held.Load() && ctx.Err() == nil {
		e.log.Warn("lost the Lease: stopped writing, campaigning again", "identity", e.cfg.Identity)
	}
	return nil
}

// gatedLock is the Lease lock with two additions: it records that this
// replica wrote itself into the Lease (client-go then always starts the
// term's lead, which the term must wait for), and it holds a release back
// until lead has returned.
type gatedLock struct {
	resourcelock.Interface
	held    atomic.Bool
	stopped chan struct{} // closed when the term's lead has returned
}

func (l *gatedLock) Create(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, r)
	if err == nil && r.HolderIdentity == l.Identity() {
		l.held.Store(true)
	}
	return err
}

func (l *gatedLock) Update(ctx context.Context, r resourcelock.LeaderElectionRecord) error {
	if r.HolderIdentity == "" && l.held.Load() {
		// A release: only once this replica stopped writing.
		select {
		case <-l.stopped:
		case <-ctx.Done():
			return fmt.Errorf("releasing the Lease: the writers did not stop in time: %w", ctx.Err())
		}
	}
	err := l.Interface.Update(ctx, r)
	if err == nil && r.HolderIdentity == l.Identity() {
		l.held.Store(true)
	}
	return err
}
