package clusterdns_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	atolldns "github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/test/clusterdns"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// How long a name may take to appear once its Service exists: the watch
// reaching CoreDNS. Only a bound on waiting, never asserted.
const appearTimeout = 30 * time.Second

// TestClusterDNS runs CoreDNS against a real API server, with atoll's own
// DNS server (package dns, as a zone runs it) as the zone's DNS of mesh and
// a real DNS server standing in for the upstream resolver, and asks it
// what a pod would.
func TestClusterDNS(t *testing.T) {
	env := kubeenv.Start(t)
	admin := env.Clientset(t)
	zone := serveAtollDNS(t, map[string][]netip.Addr{"backend": {netip.MustParseAddr("240.0.0.7")}})
	upstream := serveZone(t, "example.", map[string]string{"www.example.": "192.0.2.10"})

	dns := clusterdns.Start(t, clusterdns.Config{
		Kube:        env,
		Upstream:    upstream,
		StubDomains: map[string]string{"mesh": zone},
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web, err := admin.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend-remote"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "backend.mesh"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			// A ClusterIP Service, from the API server's watch.
			r := waitFor(t, dns.Addr, network, "web.shop.svc.cluster.local.", func(r *mdns.Msg) bool { return len(aRecords(r)) > 0 })
			if got := aRecords(r); len(got) != 1 || got[0] != web.Spec.ClusterIP {
				t.Errorf("web.shop.svc.cluster.local A = %v, want the Service's ClusterIP %s", got, web.Spec.ClusterIP)
			}

			// An ExternalName Service into mesh: CoreDNS answers the CNAME
			// and follows it through the stub-domain block to the zone (the
			// upstream refuses mesh names).
			r = waitFor(t, dns.Addr, network, "backend-remote.shop.svc.cluster.local.", func(r *mdns.Msg) bool { return len(aRecords(r)) > 0 })
			if got := cnameTargets(r); len(got) != 1 || got[0] != "backend.mesh." {
				t.Errorf("backend-remote.shop.svc.cluster.local CNAME = %v, want backend.mesh.", got)
			}
			if got := aRecords(r); len(got) != 1 || got[0] != "240.0.0.7" {
				t.Errorf("backend-remote.shop.svc.cluster.local A (through the CNAME) = %v, want the zone's 240.0.0.7", got)
			}

			// A mesh name directly, and names no zone has.
			if got := aRecords(ask(t, dns.Addr, network, "backend.mesh.")); len(got) != 1 || got[0] != "240.0.0.7" {
				t.Errorf("backend.mesh A = %v, want 240.0.0.7", got)
			}
			if got := aRecords(ask(t, dns.Addr, network, "www.example.")); len(got) != 1 || got[0] != "192.0.2.10" {
				t.Errorf("www.example A (forwarded upstream) = %v, want 192.0.2.10", got)
			}
			for _, name := range []string{"nothing.mesh.", "missing.shop.svc.cluster.local.", "nothing.example."} {
				if r := ask(t, dns.Addr, network, name); r.Rcode != mdns.RcodeNameError {
					t.Errorf("%s: rcode %s, want NXDOMAIN", name, mdns.RcodeToString[r.Rcode])
				}
			}
		})
	}

	// A second cluster DNS of the same API server, on an address given,
	// with its own ServiceAccount, no upstream and no stub domain: it knows
	// the cluster's Services and nothing else.
	addr := freeAddr(t, "127.0.0.2")
	second := clusterdns.Start(t, clusterdns.Config{Kube: env, Addr: addr, ServiceAccount: "coredns-2"})
	if second.Addr != addr {
		t.Errorf("second CoreDNS on %s, want the address given, %s", second.Addr, addr)
	}
	r := waitFor(t, second.Addr, "udp", "web.shop.svc.cluster.local.", func(r *mdns.Msg) bool { return len(aRecords(r)) > 0 })
	if got := aRecords(r); len(got) != 1 || got[0] != web.Spec.ClusterIP {
		t.Errorf("second CoreDNS: web.shop.svc.cluster.local A = %v, want %s", got, web.Spec.ClusterIP)
	}
	for _, name := range []string{"backend.mesh.", "www.example."} {
		if r := ask(t, second.Addr, "udp", name); r.Rcode != mdns.RcodeServerFailure {
			t.Errorf("second CoreDNS (no upstream, no stub domain): %s rcode %s, want SERVFAIL", name, mdns.RcodeToString[r.Rcode])
		}
	}

	// CoreDNS's ServiceAccount holds exactly what it reads.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		verb, group, resource string
		want                  bool
	}{
		{"list", "", "services", true},
		{"watch", "", "services", true},
		{"watch", "discovery.k8s.io", "endpointslices", true},
		{"list", "", "namespaces", true},
		{"get", "", "services", false},
		{"update", "", "services", false},
		{"list", "", "pods", false},
		{"list", "", "endpoints", false},
		{"list", "", "secrets", false},
		{"create", "discovery.k8s.io", "endpointslices", false},
	} {
		review, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:               "system:serviceaccount:" + clusterdns.DefaultNamespace + ":" + clusterdns.DefaultServiceAccount,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + clusterdns.DefaultNamespace},
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: c.verb, Group: c.group, Resource: c.resource},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != c.want {
			t.Errorf("CoreDNS's ServiceAccount: %s %s.%s allowed = %v, want %v", c.verb, c.resource, c.group, review.Status.Allowed, c.want)
		}
	}
}

// serveAtollDNS runs atoll's DNS server for mesh with names, as a zone
// does, on a free loopback port, and returns its address.
func serveAtollDNS(t *testing.T, names map[string][]netip.Addr) string {
	t.Helper()
	srv := atolldns.NewServer(atolldns.Config{Addr: "127.0.0.1:0", Domain: "mesh", TTL: 5 * time.Second},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv.SetTable(atolldns.NewTable("mesh", names))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("atoll's DNS server: %v", err)
		}
	})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for srv.Addr() == nil {
		select {
		case err := <-done:
			t.Fatalf("atoll's DNS server did not start: %v", err)
		case <-tick.C:
		}
	}
	return srv.Addr().String()
}

// serveZone runs a real DNS server on loopback, UDP and TCP, authoritative
// for one domain: the A records it was given, NXDOMAIN with an SOA for
// other names of the domain, REFUSED outside it.
func serveZone(t *testing.T, domain string, records map[string]string) string {
	t.Helper()
	soa := &mdns.SOA{Hdr: mdns.RR_Header{Name: domain, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 5},
		Ns: "ns." + domain, Mbox: "hostmaster." + domain, Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 5}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		switch ip, ok := records[name]; {
		case !mdns.IsSubDomain(domain, name):
			m.Rcode = mdns.RcodeRefused
		case ok && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
		case ok:
			m.Ns = append(m.Ns, soa) // NODATA
		default:
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, soa)
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("TCP on the UDP port of the %s server: %v", domain, err)
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// freeAddr is ip with a port free for both UDP and TCP.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("listening on %s: %v", ip, err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatalf("no port on %s free for both UDP and TCP", ip)
	return ""
}

// ask sends one A question for name to server over network.
func ask(t *testing.T, server, network, name string) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	q := new(mdns.Msg).SetQuestion(name, mdns.TypeA)
	r, _, err := c.Exchange(q, server)
	if err != nil {
		t.Fatalf("%s question for %s to %s: %v", network, name, server, err)
	}
	return r
}

// waitFor asks until ok accepts the answer (a Service the watch has not
// yet brought) and returns it; it fails the test after appearTimeout.
func waitFor(t *testing.T, server, network, name string, ok func(*mdns.Msg) bool) *mdns.Msg {
	t.Helper()
	deadline := time.Now().Add(appearTimeout)
	for {
		r := ask(t, server, network, name)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: still %s with answers %v after %s", network, name, mdns.RcodeToString[r.Rcode], r.Answer, appearTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func aRecords(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func cnameTargets(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if c, ok := rr.(*mdns.CNAME); ok {
			out = append(out, c.Target)
		}
	}
	return out
}
