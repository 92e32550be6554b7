package perf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// The pods of the Kubernetes benchmarks: kubeNamespaces mesh namespaces,
// each with kubeServices Services of kubePodsPerService pods.
const (
	kubeNamespaces     = 10
	kubeServices       = 10
	kubePodsPerService = 20
	kubePods           = kubeNamespaces * kubeServices * kubePodsPerService
)

// kubeTopology is a real kube-apiserver holding the benchmark's pods, a
// global (in this process) and a universal zone "other" (in this process)
// that sees what Kubernetes zones offer. Kubernetes zones run as atoll
// processes, so their CPU time is their own.
type kubeTopology struct {
	env    *kubeenv.Env
	admin  *k8s.Clientset // the harness's client: not rate limited in practice
	dyn    dynamic.Interface
	global global.Config
	// kubeconfig authenticates as a ServiceAccount (bound to cluster-admin),
	// so the zone's requests are classified by API Priority and Fairness as
	// a real zone's would be; the admin's are exempt.
	kubeconfig string
	globalURL  string
	otherURL   string
	dir        string
	bin        string // cmd/atoll, built for the zones
	// atGlobal counts the Dataplanes the global holds per zone.
	atGlobal *globalDataplanes
}

// globalDataplanes follows the global's etcd and counts the Dataplanes it
// holds per zone: polling the global's API for counts would load it with
// reading every Dataplane, many times a second, while it is measured.
type globalDataplanes struct {
	mu      sync.Mutex
	keys    map[string]map[string]bool // by zone
	changed map[string]time.Time       // by zone: the last change's arrival
}

func watchGlobal(b *testing.B, g global.Config) *globalDataplanes {
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + g.Etcd.ClientAddr}, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done; etcd.Close() })
	w := &globalDataplanes{keys: map[string]map[string]bool{}, changed: map[string]time.Time{}}
	created := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range etcd.Watch(ctx, g.Etcd.Prefix+"resources/Dataplane/", clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
			if resp.Created {
				close(created)
				continue
			}
			now := time.Now()
			w.mu.Lock()
			for _, e := range resp.Events {
				key := string(e.Kv.Key)
				zone := key[strings.LastIndexByte(key, '.')+1:]
				if w.keys[zone] == nil {
					w.keys[zone] = map[string]bool{}
				}
				if e.Type == clientv3.EventTypeDelete {
					delete(w.keys[zone], key)
				} else {
					w.keys[zone][key] = true
				}
				w.changed[zone] = now
			}
			w.mu.Unlock()
		}
	}()
	<-created
	return w
}

// count returns how many Dataplanes of zone the global holds, and when
// that count was reached.
func (w *globalDataplanes) count(zone string) (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.keys[zone]), w.changed[zone]
}

func startKube(b *testing.B) *kubeTopology {
	env := kubeenv.Start(b)
	cfg := env.Config()
	cfg.QPS, cfg.Burst = 10000, 20000
	admin, err := k8s.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join("..", "..", "charts", "atoll", "crds")); err != nil {
		b.Fatal(err)
	}
	k := &kubeTopology{env: env, admin: admin, dyn: dyn, dir: b.TempDir()}
	k.bin = buildAtoll(b, k.dir)
	k.namespace(b, "atoll-bench", nil)
	k.kubeconfig = k.zoneCredentials(b)

	g := global.Default()
	g.APIAddr, g.KDSAddr = freeAddr(b), freeAddr(b)
	g.DataDir = filepath.Join(k.dir, "global")
	g.Etcd.ClientAddr, g.Etcd.PeerAddr = freeAddr(b), "127.0.0.1:0"
	g.KDS.Insecure = true
	startGlobal(b, g)
	k.global, k.globalURL = g, "http://"+g.APIAddr
	k.atGlobal = watchGlobal(b, g)

	z := zone.Default()
	z.Zone, z.APIAddr, z.DataDir = "other", freeAddr(b), filepath.Join(k.dir, "other")
	z.GlobalAddress, z.KDSInsecure = "grpc://"+g.KDSAddr, true
	z.GlobalTokenFile = zoneTokenFile(b, k.globalURL, z.Zone, k.dir)
	z.DNS.Addr, z.XDS.Addr = "127.0.0.1:0", "127.0.0.1:0"
	startZone(b, z)
	k.otherURL = "http://" + z.APIAddr
	return k
}

// zoneCredentials makes the ServiceAccount atoll-bench/zone, bound to
// cluster-admin, and returns a kubeconfig with its token.
func (k *kubeTopology) zoneCredentials(b *testing.B) string {
	ctx := context.Background()
	if _, err := k.admin.CoreV1().ServiceAccounts("atoll-bench").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "zone"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := k.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "atoll-bench-zone"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "atoll-bench", Name: "zone"}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	return kubeenv.WriteKubeconfig(b, k.env.ServiceAccountConfig(b, "atoll-bench", "zone"))
}

func (k *kubeTopology) namespace(b *testing.B, name string, labels map[string]string) {
	if _, err := k.admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		b.Fatalf("creating namespace %s: %v", name, err)
	}
}

// podIP is the i-th pod address of 10.0.0.0/8 (generation gen keeps a
// moved pod's addresses apart from the first ones).
func podIP(i, gen int) string {
	n := gen<<17 | (i + 1)
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// service creates Service name in ns selecting app=name, port 80 to the
// pods' port http (8080).
func (k *kubeTopology) service(b *testing.B, ns, name string) {
	if _, err := k.admin.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatalf("creating service %s/%s: %v", ns, name, err)
	}
}

// createPod creates pod ns/name labelled app=app, then plays the kubelet:
// gives it ip and marks it Ready (or not).
func (k *kubeTopology) createPod(ctx context.Context, ns, name, app, ip string, ready bool) error {
	pods := k.admin.CoreV1().Pods(ns)
	_, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pod %s/%s: %w", ns, name, err)
	}
	return k.setStatus(ctx, ns, name, ip, ready)
}

// setStatus sets the pod's IP and Ready condition through the status
// subresource, as the kubelet does, and returns once the API server has
// acknowledged it. A merge patch replaces the lists (podIPs, conditions)
// whole.
func (k *kubeTopology) setStatus(ctx context.Context, ns, name, ip string, ready bool) error {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"phase": corev1.PodRunning, "podIP": ip, "podIPs": []map[string]string{{"ip": ip}},
		"conditions": []map[string]any{{"type": corev1.PodReady, "status": cond}},
	}})
	if err != nil {
		return err
	}
	if _, err := k.admin.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("setting the status of pod %s/%s: %w", ns, name, err)
	}
	return nil
}

// kubePod names the i-th of the benchmark's pods.
func kubePod(i int) (ns, name, app string) {
	svc := i / kubePodsPerService
	return fmt.Sprintf("app-%d", svc/kubeServices), fmt.Sprintf("svc-%d-%d", svc%kubeServices, i%kubePodsPerService),
		fmt.Sprintf("svc-%d", svc%kubeServices)
}

// populate creates the mesh namespaces, their Services and kubePods
// running, Ready pods with IPs, with parallel requests.
func (k *kubeTopology) populate(b *testing.B) {
	for n := range kubeNamespaces {
		ns := fmt.Sprintf("app-%d", n)
		k.namespace(b, ns, map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
		for s := range kubeServices {
			k.service(b, ns, fmt.Sprintf("svc-%d", s))
		}
	}
	parallel(b, kubePods, 32, func(i int) error {
		ns, name, app := kubePod(i)
		return k.createPod(context.Background(), ns, name, app, podIP(i, 0), true)
	})
}

// parallel runs do(0..n-1) on workers goroutines, failing b on an error.
func parallel(b *testing.B, n, workers int, do func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// buildAtoll builds cmd/atoll into dir.
func buildAtoll(b *testing.B, dir string) string {
	bin := filepath.Join(dir, "atoll")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/atoll").CombinedOutput(); err != nil {
		b.Fatalf("building cmd/atoll: %v\n%s", err, out)
	}
	return bin
}

// kubeZone is a Kubernetes-mode zone process.
type kubeZone struct {
	name, url string
	cmd       *exec.Cmd
	started   time.Time
	done      chan struct{}
	mu        sync.Mutex
	// seen is when each log message was first read from the process.
	seen map[string]time.Time
	logs strings.Builder
}

// startKubeZone runs `atoll zone --mode kubernetes` named name, with home
// namespace home (created here) and extra flags, and returns once it is
// started (not yet ready: the cold start is what is measured).
func (k *kubeTopology) startKubeZone(b *testing.B, name, home string, extra ...string) *kubeZone {
	k.namespace(b, home, nil)
	dir := filepath.Join(k.dir, name)
	token := zoneTokenFile(b, k.globalURL, name, k.dir)
	z := &kubeZone{name: name, url: "http://" + freeAddr(b), done: make(chan struct{}), seen: map[string]time.Time{}}
	args := append([]string{"zone", "--mode", "kubernetes", "--zone", name,
		"--kubeconfig", k.kubeconfig, "--namespace", home,
		"--global-address", "grpc://" + k.global.KDSAddr, "--kds-insecure", "--global-token-file", token,
		"--api-addr", strings.TrimPrefix(z.url, "http://"), "--data-dir", dir,
		"--dns-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--log-format", "json"}, extra...)
	z.cmd = exec.Command(k.bin, args...)
	stderr, err := z.cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	z.started = time.Now()
	if err := z.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			now := time.Now()
			var entry struct {
				Msg string `json:"msg"`
			}
			json.Unmarshal(sc.Bytes(), &entry)
			z.mu.Lock()
			if _, ok := z.seen[entry.Msg]; !ok {
				z.seen[entry.Msg] = now
			}
			if z.logs.Len() < 1<<20 {
				z.logs.Write(sc.Bytes())
				z.logs.WriteByte('\n')
			}
			z.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
		z.cmd.Wait()
		close(z.done)
	}()
	b.Cleanup(z.stop)
	return z
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (z *kubeZone) stop() {
	select {
	case <-z.done:
		return
	default:
	}
	z.cmd.Process.Signal(os.Interrupt)
	select {
	case <-z.done:
	case <-time.After(10 * time.Second):
		z.cmd.Process.Kill()
		<-z.done
	}
}

// at returns how long after the start the message msg was first logged,
// failing b when it was not.
func (z *kubeZone) at(b *testing.B, msg string) time.Duration {
	z.mu.Lock()
	defer z.mu.Unlock()
	t, ok := z.seen[msg]
	if !ok {
		b.Fatalf("zone %s never logged %q:\n%s", z.name, msg, z.logs.String())
	}
	return t.Sub(z.started)
}

// alive fails b when the zone process has exited.
func (z *kubeZone) alive(b *testing.B) {
	select {
	case <-z.done:
		z.mu.Lock()
		defer z.mu.Unlock()
		b.Fatalf("zone %s exited: %v\n%s", z.name, z.cmd.ProcessState, z.logs.String())
	default:
	}
}

// cpu is the user and system CPU time the zone process has used.
func (z *kubeZone) cpu(b *testing.B) time.Duration {
	return processCPU(b, z.cmd.Process.Pid)
}

// processCPU is the user and system CPU time process pid has used, from
// /proc/<pid>/stat.
func processCPU(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the CPU time of process %d: %v", pid, err)
	}
	// Fields after the command name (which is in parentheses): state is
	// field 3, utime 14 and stime 15, in clock ticks (100 per second on
	// Linux).
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parsing /proc/%d/stat: %q", pid, stat)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// apiserverPID finds the kube-apiserver process of the topology: the one
// whose command line names its certificate directory.
func (k *kubeTopology) apiserverPID(b *testing.B) int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	want := []byte("--cert-dir=" + k.env.Dir + "\x00")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && bytes.Contains(cmd, want) {
			return pid
		}
	}
	b.Fatalf("no kube-apiserver process with --cert-dir=%s", k.env.Dir)
	return 0
}

// dataplaneCRs counts the Dataplane custom resources of home's store.
func (k *kubeTopology) dataplaneCRs(b *testing.B, home string) int {
	gvr, err := crdstore.GVR("Dataplane")
	if err != nil {
		b.Fatal(err)
	}
	list, err := k.dyn.Resource(gvr).List(context.Background(), metav1.ListOptions{
		LabelSelector: crdstore.HomeLabel + "=" + home})
	if err != nil {
		b.Fatalf("listing Dataplanes: %v", err)
	}
	return len(list.Items)
}

// deleteDataplaneCRs deletes every Dataplane custom resource of home's
// store (in the pods' namespaces) and waits until they are gone.
func (k *kubeTopology) deleteDataplaneCRs(b *testing.B, home string) {
	gvr, err := crdstore.GVR("Dataplane")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for n := range kubeNamespaces {
		ns := fmt.Sprintf("app-%d", n)
		if err := k.dyn.Resource(gvr).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: crdstore.HomeLabel + "=" + home}); err != nil {
			b.Fatalf("deleting the Dataplanes of %s in %s: %v", home, ns, err)
		}
	}
	until(b, time.Minute, "the Dataplane custom resources to be deleted", func() bool { return k.dataplaneCRs(b, home) == 0 })
}

// instancesAtOther is how many healthy instances the zone "other" sees in
// zone zoneName, over all services.
func (k *kubeTopology) instancesAtOther(zoneName string) int {
	status, body := get(k.otherURL + "/meshes/default/services")
	if status != http.StatusOK {
		return -1
	}
	var v struct {
		Items []zone.ServiceView `json:"items"`
	}
	if json.Unmarshal(body, &v) != nil {
		return -1
	}
	n := 0
	for _, s := range v.Items {
		n += int(s.Zones[zoneName])
	}
	return n
}

// until polls cond every 5 ms until it holds, failing b after limit.
func until(b *testing.B, limit time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// untilZone is until for a condition on zone z: it fails b when z exits,
// and tells what z had done when the condition never held.
func (k *kubeTopology) untilZone(b *testing.B, z *kubeZone, limit time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		z.alive(b)
		if time.Now().After(deadline) {
			z.mu.Lock()
			logs := z.logs.String()
			z.mu.Unlock()
			if len(logs) > 8000 {
				logs = logs[len(logs)-8000:]
			}
			_, status := get(z.url + "/zone")
			atGlobal, _ := k.atGlobal.count(z.name)
			b.Fatalf("waited %s for %s: the global holds %d of zone %s's Dataplanes, %d custom resources exist; the zone's status: %s; the zone logged:\n%s",
				limit, what, atGlobal, z.name, k.dataplaneCRs(b, "atoll-"+z.name), status, logs)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
