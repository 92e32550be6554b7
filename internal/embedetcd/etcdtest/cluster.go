package etcdtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Cluster is a real etcd cluster of several members in this process, each
// on fixed loopback ports and its own data directory, so that a member
// stopped and started again comes back as itself.
type Cluster struct {
	t       testing.TB
	members []*member
}

type member struct {
	name, dir          string
	clientURL, peerURL url.URL
	mu                 sync.Mutex
	etcd               *embed.Etcd // nil while stopped
}

// StartCluster starts an n-member cluster and waits until it has a
// leader. Every member stops when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	ports := stablePorts(t, 2*n)
	var initial []string
	for i := range n {
		m := &member{name: fmt.Sprintf("m%d", i), dir: t.TempDir(),
			clientURL: url.URL{Scheme: "http", Host: "127.0.0.1:" + ports[2*i]},
			peerURL:   url.URL{Scheme: "http", Host: "127.0.0.1:" + ports[2*i+1]}}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL.String())
	}
	errs := make(chan error, n)
	for _, m := range c.members {
		go func() { errs <- m.start(strings.Join(initial, ",")) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Stop(i)
		}
	})
	return c
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.clientURL.String()
	}
	return out
}

// Leader is the index of the member that leads, -1 when none that runs
// does.
func (c *Cluster) Leader() int {
	for i, m := range c.members {
		m.mu.Lock()
		e := m.etcd
		m.mu.Unlock()
		if e != nil && e.Server.Leader() == e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops member i (a no-op when it is stopped).
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// Start starts member i again on its data directory and ports. It does
// not wait for a quorum: with too few members up there is none.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	if err := c.members[i].start(""); err != nil {
		c.t.Fatal(err)
	}
}

// start runs the member; initial is the cluster it founds, or empty to
// rejoin the one its data directory records. It waits for readiness only
// when founding (a member rejoining without a quorum is never ready).
func (m *member) start(initial string) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialClusterToken = "atoll-test"
	if initial != "" {
		cfg.InitialCluster = initial
		cfg.ClusterState = embed.ClusterStateFlagNew
	} else {
		cfg.InitialCluster = m.name + "=" + m.peerURL.String()
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	zcfg := zap.NewProductionConfig()
	zcfg.Level = zap.NewAtomicLevelAt(zap.FatalLevel)
	zl, err := zcfg.Build()
	if err != nil {
		return err
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.name, err)
	}
	if initial != "" {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			e.Close()
			return fmt.Errorf("etcd member %s failed while starting: %w", m.name, err)
		case <-time.After(time.Minute):
			e.Close()
			return fmt.Errorf("etcd member %s not ready within a minute", m.name)
		}
	}
	m.mu.Lock()
	m.etcd = e
	m.mu.Unlock()
	return nil
}

// stablePorts returns n loopback ports free a moment ago, from below the
// kernel's ephemeral range, so that no port the kernel hands out takes one
// from a member that stops and starts again on it.
func stablePorts(t testing.TB, n int) []string {
	t.Helper()
	var ports []string
	for range 1000 {
		if len(ports) == n {
			return ports
		}
		port := fmt.Sprint(20000 + rand.IntN(12000))
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			continue
		}
		ln.Close()
		dup := false
		for _, p := range ports {
			dup = dup || p == port
		}
		if !dup {
			ports = append(ports, port)
		}
	}
	t.Fatalf("fewer than %d free loopback ports in 20000-31999", n)
	return nil
}
