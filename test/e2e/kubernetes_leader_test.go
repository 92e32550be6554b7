package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/zone"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// shortLease makes handovers quick: a killed leader is replaced within 3s.
var shortLease = []string{"--leader-election-lease-duration", "3s",
	"--leader-election-renew-deadline", "2s", "--leader-election-retry-period", "250ms"}

// replicaStatus is GET /zone of a zone replica.
func replicaStatus(t *testing.T, p *process) zone.ZoneStatus {
	t.Helper()
	status, body := call(t, "GET", p.apiURL+"/zone", "")
	var st zone.ZoneStatus
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("GET /zone: %d %s", status, body)
	}
	return st
}

// leaderMetric is the replica's atoll_zone_leader.
func leaderMetric(t *testing.T, p *process) string {
	t.Helper()
	_, body := call(t, "GET", p.apiURL+"/metrics", "")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "atoll_zone_leader "); ok {
			return v
		}
	}
	return "absent"
}

// waitLeader waits until exactly one of the running replicas leads: it
// says so, the others follow it, the Lease names it, only it is connected
// to the global, and the metric agrees. It returns the leader.
func waitLeader(t *testing.T, c *kubeCluster, replicas ...*process) *process {
	t.Helper()
	var leader *process
	waitFor(t, 20*time.Second, "one leader among the replicas", func() error {
		leader = nil
		statuses := map[*process]zone.ZoneStatus{}
		for _, p := range replicas {
			st := replicaStatus(t, p)
			if st.Leader == nil {
				return fmt.Errorf("GET /zone of a Kubernetes zone has no leader: %+v", st)
			}
			statuses[p] = st
			if st.Leader.Leading {
				if leader != nil {
					return fmt.Errorf("two replicas lead: %s and %s", statuses[leader].Leader.Identity, st.Leader.Identity)
				}
				leader = p
			}
		}
		if leader == nil {
			return fmt.Errorf("no replica leads")
		}
		id := statuses[leader].Leader.Identity
		lease, err := c.client.CoordinationV1().Leases(zoneNamespace).Get(context.Background(), "atoll-zone-zone-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := lease.Spec.HolderIdentity; h == nil || *h != id {
			return fmt.Errorf("the Lease names %v, the leader is %s", h, id)
		}
		for p, st := range statuses {
			want := "0"
			if p == leader {
				want = "1"
				if !st.Connected {
					return fmt.Errorf("the leader %s is not connected to the global: %s", id, st.LastError)
				}
			} else if st.Connected || st.Leader.Holder != id {
				return fmt.Errorf("follower %s: connected %v, sees holder %q, want not connected, holder %s", st.Leader.Identity, st.Connected, st.Leader.Holder, id)
			}
			if got := leaderMetric(t, p); got != want {
				return fmt.Errorf("%s: atoll_zone_leader %s, want %s", st.Leader.Identity, got, want)
			}
		}
		return nil
	})
	return leader
}

// podCreator creates mesh workload pods web-0, web-1... in namespace shop
// until stopped, and deletes every fourth one after creating the next,
// as a Deployment rolling along would.
type podCreator struct {
	c    *kubeCluster
	mu   sync.Mutex
	live map[string]string // pod name → IP
	n    int
	stop chan struct{}
	done chan error
}

func startPodCreator(t *testing.T, c *kubeCluster) *podCreator {
	pc := &podCreator{c: c, live: map[string]string{}, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() { pc.done <- pc.run() }()
	t.Cleanup(func() { pc.halt(t) })
	return pc
}

func (pc *podCreator) run() error {
	ctx := context.Background()
	pods := pc.c.client.CoreV1().Pods("shop")
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-pc.stop:
			return nil
		case <-tick.C:
		}
		name, ip := fmt.Sprintf("web-%d", i), fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)
		pod, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating pod %s: %w", name, err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("setting the status of pod %s: %w", name, err)
		}
		pc.mu.Lock()
		pc.live[name] = ip
		pc.n = i + 1
		pc.mu.Unlock()
		if i%4 == 1 {
			gone := fmt.Sprintf("web-%d", i-1)
			zero := int64(0)
			if err := pods.Delete(ctx, gone, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				return fmt.Errorf("deleting pod %s: %w", gone, err)
			}
			pc.mu.Lock()
			delete(pc.live, gone)
			pc.mu.Unlock()
		}
	}
}

// created is the number of pods created so far.
func (pc *podCreator) created() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.n
}

// waitCreated waits until n more pods than now were created.
func (pc *podCreator) waitCreated(t *testing.T, n int) {
	t.Helper()
	target := pc.created() + n
	waitFor(t, 30*time.Second, fmt.Sprintf("%d pods created", target), func() error {
		if got := pc.created(); got < target {
			return fmt.Errorf("%d created", got)
		}
		return nil
	})
}

// halt stops creating and returns the pods that should have Dataplanes.
func (pc *podCreator) halt(t *testing.T) map[string]string {
	t.Helper()
	select {
	case <-pc.stop:
	default:
		close(pc.stop)
		if err := <-pc.done; err != nil {
			t.Fatal(err)
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return maps.Clone(pc.live)
}

// TestKubernetesZoneLeaderHandover runs zone-1 as several replicas while
// pods come and go: one leads (the Lease holder, the only one connected to
// the global), the others follow and serve. A leader stopped cleanly hands
// over at once, a killed one within the lease; at the end every live pod
// has exactly one Dataplane in the CRDs and at the global, none of a
// deleted pod remains, and the ZoneIngress counts them.
func TestKubernetesZoneLeaderHandover(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	c.createNamespace(t, "shop", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	if _, err := c.client.CoreV1().Services("shop").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r1 := startKubernetesZone(t, c, "zone-1", g, shortLease...)
	r2 := startKubernetesZone(t, c, "zone-1", g, shortLease...)
	first := waitLeader(t, c, r1, r2)
	second := r2
	if first == r2 {
		second = r1
	}
	pods := startPodCreator(t, c)
	pods.waitCreated(t, 20)

	// A clean stop: the Lease is released once the leader stopped writing,
	// and the follower takes over at once.
	first.stop()
	if got := waitLeader(t, c, second); got != second {
		t.Fatal("the follower did not take over")
	}
	pods.waitCreated(t, 20)

	// A kill: the Lease stays with the dead leader until it expires.
	r3 := startKubernetesZone(t, c, "zone-1", g, shortLease...)
	if got := waitLeader(t, c, second, r3); got != second {
		t.Fatal("a replica that joined took the lead from a live leader")
	}
	pods.waitCreated(t, 10)
	second.cmd.Process.Kill()
	<-second.done
	if got := waitLeader(t, c, r3); got != r3 {
		t.Fatal("the last replica did not take over from the killed leader")
	}
	pods.waitCreated(t, 20)
	live := pods.halt(t)

	want := map[string]string{} // Dataplane name → IP
	for pod, ip := range live {
		want[kubernetes.DataplaneName("shop", pod)] = ip
	}
	dpGVR, err := crdstore.GVR("Dataplane")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "one Dataplane custom resource per live pod", func() error {
		list, err := c.dyn.Resource(dpGVR).Namespace("shop").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		got := map[string]string{}
		for _, item := range list.Items {
			// The object is named <name>.<mesh> (crdstore.ObjectName).
			got[strings.TrimSuffix(item.GetName(), ".default")] = fmt.Sprint(nested(item.Object, "spec", "networking", "address"))
		}
		return sameDataplanes(got, want)
	})
	waitFor(t, 30*time.Second, "one Dataplane per live pod at the global", func() error {
		got := map[string]string{}
		for _, dp := range globalDataplanes(t, g) {
			if dp.Labels["atoll.io/zone"] == "zone-1" {
				got[strings.TrimSuffix(dp.Name, ".zone-1")] = dp.Networking.Address
			}
		}
		return sameDataplanes(got, want)
	})
	// The ZoneIngress of the last leader counts the live pods; the global
	// has it, and so does a follower's read API.
	r4 := startKubernetesZone(t, c, "zone-1", g, shortLease...)
	waitLeader(t, c, r3, r4)
	for _, p := range []*process{r3, r4} {
		waitFor(t, 30*time.Second, "the ZoneIngress counting every live pod", func() error {
			status, body := call(t, "GET", p.apiURL+"/meshes/default/services/web_shop_svc_80", "")
			var v zone.ServiceView
			if status != 200 || json.Unmarshal([]byte(body), &v) != nil {
				return fmt.Errorf("GET services/web_shop_svc_80: %d %s", status, body)
			}
			if v.Zones["zone-1"] != uint32(len(live)) {
				return fmt.Errorf("zone-1 offers %d instances of web_shop_svc_80, want %d", v.Zones["zone-1"], len(live))
			}
			return nil
		})
	}
	waitFor(t, 30*time.Second, "zone-1's ZoneIngress at the global counting every live pod", func() error {
		// zone-1's summary is one ZoneIngress per service (and its own).
		if n := summarised(t, g.apiURL, "web_shop_svc_80", "zone-1"); n != uint32(len(live)) {
			return fmt.Errorf("the global's records of zone-1 count %d instances of web_shop_svc_80, want %d", n, len(live))
		}
		return nil
	})
	checkSessions(t, g, first, second, r3)
}

// sameDataplanes compares Dataplanes by name and address.
func sameDataplanes(got, want map[string]string) error {
	var missing, extra, wrong []string
	for name, ip := range want {
		switch g, ok := got[name]; {
		case !ok:
			missing = append(missing, name)
		case g != ip:
			wrong = append(wrong, name+" at "+g+", want "+ip)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(missing)+len(extra)+len(wrong) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		return fmt.Errorf("%d Dataplanes, want %d: missing %v, of deleted pods %v, wrong %v", len(got), len(want), missing, extra, wrong)
	}
	return nil
}

// checkSessions checks from the global's log that zone-1 was connected by
// its leaders only, never by a follower: each session's instance
// (host-pid) is one of leaders, and each leader had one.
func checkSessions(t *testing.T, g *process, leaders ...*process) {
	t.Helper()
	pids := map[string]bool{}
	for _, p := range leaders {
		pids[strconv.Itoa(p.cmd.Process.Pid)] = true
	}
	connected := 0
	for line := range strings.Lines(g.logs.String()) {
		var entry struct {
			Msg      string `json:"msg"`
			Zone     string `json:"zone"`
			Instance string `json:"instance"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "zone connected" || entry.Zone != "zone-1" {
			continue
		}
		connected++
		pid := entry.Instance[strings.LastIndex(entry.Instance, "-")+1:]
		if !pids[pid] {
			t.Errorf("the global had a session of zone-1 from instance %s, not one of its leaders (pids %v)", entry.Instance, slices.Collect(maps.Keys(pids)))
		}
	}
	if connected < len(leaders) {
		t.Errorf("the global saw %d sessions of zone-1, want one per leader (%d)", connected, len(leaders))
	}
}
