package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

const leaseNS, leaseName = "default", "atoll-zone-zone-1"

// replica is one contender for the Lease in a test: its election, the
// terms it led, and how Run ended.
type replica struct {
	e       *kubernetes.Election
	started chan struct{} // a value per term that started
	cancel  context.CancelFunc
	done    chan error
}

// writers counts the leads running at once across replicas; overlap
// records any moment two ran together.
type writers struct {
	running atomic.Int32
	overlap atomic.Bool
}

// startReplica runs an election whose lead counts itself in w, and, once
// its context ends, keeps "writing" for linger before it returns, as slow
// writers would.
func startReplica(t *testing.T, client k8s.Interface, name string, w *writers, linger time.Duration) *replica {
	t.Helper()
	e, err := kubernetes.NewElection(kubernetes.ElectionConfig{Client: client, Namespace: leaseNS, Name: leaseName,
		Identity: name, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{e: e, started: make(chan struct{}, 16), cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- e.Run(ctx, func(ctx context.Context) error {
			if w.running.Add(1) > 1 {
				w.overlap.Store(true)
			}
			r.started <- struct{}{}
			<-ctx.Done()
			time.Sleep(linger)
			w.running.Add(-1)
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func waitTerm(t *testing.T, r *replica, what string) {
	t.Helper()
	select {
	case <-r.started:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start to lead within 30s", what)
	}
}

// waitUntil polls cond until it returns nil, failing after 30s.
func waitUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func holder(t *testing.T, client k8s.Interface) string {
	t.Helper()
	lease, err := client.CoordinationV1().Leases(leaseNS).Get(context.Background(), leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func TestElection(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)

	t.Run("one leads; a clean stop hands over once its writers stopped", func(t *testing.T) {
		var w writers
		// a's writers take several retry periods to stop: without the
		// release held back, b would take over meanwhile.
		a := startReplica(t, client, "a", &w, time.Second)
		waitTerm(t, a, "a")
		b := startReplica(t, client, "b", &w, 0)
		waitUntil(t, "b to see a as holder", func() error {
			if got := b.e.Holder(); got != "a" {
				return fmt.Errorf("b sees holder %q", got)
			}
			return nil
		})
		if got := holder(t, client); got != "a" || !a.e.Leading() || b.e.Leading() {
			t.Fatalf("Lease holder %q, a leading %v, b leading %v: want a alone", got, a.e.Leading(), b.e.Leading())
		}
		a.cancel()
		if err := <-a.done; err != nil {
			t.Fatalf("a's Run = %v, want nil after a clean stop", err)
		}
		a.done <- nil // for the cleanup
		waitTerm(t, b, "b")
		if w.overlap.Load() {
			t.Fatal("a and b led at once")
		}
		if got := holder(t, client); got != "b" {
			t.Fatalf("Lease holder %q, want b", got)
		}
		b.cancel()
		<-b.done
		b.done <- nil
		if got := holder(t, client); got != "" {
			t.Errorf("Lease holder %q after b stopped, want none (released)", got)
		}
	})

	t.Run("a leader that loses the Lease stops and campaigns again", func(t *testing.T) {
		var w writers
		a := startReplica(t, client, "a", &w, 0)
		waitTerm(t, a, "a")
		// Another holder takes the Lease (as after a's renewals failed).
		leases := client.CoordinationV1().Leases(leaseNS)
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			lease, err := leases.Get(context.Background(), leaseName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			intruder, now, secs := "intruder", metav1.NewMicroTime(time.Now()), int32(3)
			lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: &intruder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
			_, err = leases.Update(context.Background(), lease, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "a to stop leading", func() error {
			if a.e.Leading() {
				return errors.New("a still leads")
			}
			return nil
		})
		// The intruder never renews: a leads again once its Lease expires.
		waitTerm(t, a, "a, a second time")
		if got := holder(t, client); got != "a" {
			t.Fatalf("Lease holder %q, want a", got)
		}
		select {
		case err := <-a.done:
			t.Fatalf("a's Run returned %v after losing the Lease, want it to campaign on", err)
		default:
		}
	})

	t.Run("a failing lead ends Run with its error and releases the Lease", func(t *testing.T) {
		e, err := kubernetes.NewElection(kubernetes.ElectionConfig{Client: client, Namespace: leaseNS, Name: leaseName,
			Identity: "c", LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = e.Run(ctx, func(context.Context) error { return errors.New("writing failed") })
		if err == nil || err.Error() != "writing failed" {
			t.Fatalf("Run = %v, want the lead's error", err)
		}
		if got := holder(t, client); got != "" {
			t.Errorf("Lease holder %q after the failure, want none", got)
		}
	})
}

func TestNewElectionRefusesBadTimings(t *testing.T) {
	// A client of an API server that is never asked.
	client, err := k8s.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kubernetes.NewElection(kubernetes.ElectionConfig{Client: client, Namespace: "ns", Name: "l", Identity: "a",
		LeaseDuration: time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "leaseDuration") {
		t.Fatalf("NewElection = %v, want an error naming leaseDuration", err)
	}
}

func TestNewIdentityIsUniquePerProcessStart(t *testing.T) {
	t.Setenv("POD_NAME", "atoll-zone-7d9f-x2")
	a, err := kubernetes.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := kubernetes.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "atoll-zone-7d9f-x2_") || a == b {
		t.Errorf("identities %q and %q: want the pod name and a unique suffix", a, b)
	}
}
