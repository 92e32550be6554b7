package dns_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/dns"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// exampleUpstream is a DNS server for example.com on loopback, with its
// own metrics so a test sees whether any query reached it.
func exampleUpstream(t *testing.T) (string, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	up, addr := startWith(t, dns.Config{Domain: "example.com"}, reg)
	up.SetTable(dns.NewTable("example.com", map[string][]netip.Addr{"www": {netip.MustParseAddr("192.0.2.1")}}))
	return addr, reg
}

// sum adds up the samples of the counter name in reg whose labels
// include all of labels (name=value pairs).
func sum(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// A client outside the allowed networks (here every test client: the
// allowlist leaves out loopback) gets REFUSED for names outside the
// domain, over UDP and TCP, and nothing reaches the upstream; names in the
// domain still answer.
func TestForwardsOnlyForAllowedNetworks(t *testing.T) {
	upAddr, upReg := exampleUpstream(t)
	reg := prometheus.NewRegistry()
	outsider := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	srv, addr := startWith(t, dns.Config{Upstream: upAddr, UpstreamAllow: outsider}, reg)
	srv.SetTable(table())
	for _, network := range []string{"udp", "tcp"} {
		if r := query(t, addr, network, "www.example.com.", mdns.TypeA, 0); r.Rcode != mdns.RcodeRefused || len(r.Answer) != 0 {
			t.Errorf("%s from outside the allowed networks: %s %s, want REFUSED", network, mdns.RcodeToString[r.Rcode], answers(r))
		}
		if r := query(t, addr, network, "backend.mesh.", mdns.TypeA, 0); answers(r) != "[240.0.0.1]" {
			t.Errorf("%s mesh name from outside the allowed networks: %v", network, r)
		}
	}
	if n := int(sum(t, upReg, "atoll_dns_queries_total")); n != 0 {
		t.Errorf("the upstream got %d queries from a refused client", n)
	}
	if got := sum(t, reg, "atoll_dns_forward_refused_total", "reason", "not-allowed"); got != 2 {
		t.Errorf(`atoll_dns_forward_refused_total{reason="not-allowed"} = %v, want 2`, got)
	}

	// The same client, once its network is allowed, is forwarded to.
	srv2, addr2 := start(t, dns.Config{Upstream: upAddr, UpstreamAllow: loopback})
	srv2.SetTable(table())
	for _, network := range []string{"udp", "tcp"} {
		if r := query(t, addr2, network, "www.example.com.", mdns.TypeA, 0); answers(r) != "[192.0.2.1]" {
			t.Errorf("%s from an allowed network: %v", network, r)
		}
	}
	if n := int(sum(t, upReg, "atoll_dns_queries_total")); n != 2 {
		t.Errorf("the upstream got %d queries, want 2", n)
	}

	// No allowlist forwards for nobody.
	_, addr3 := start(t, dns.Config{Upstream: upAddr})
	if r := query(t, addr3, "udp", "www.example.com.", mdns.TypeA, 0); r.Rcode != mdns.RcodeRefused {
		t.Errorf("without an allowlist: %s, want REFUSED", mdns.RcodeToString[r.Rcode])
	}
}

// slowUpstream reads queries on loopback and answers only when told.
type slowUpstream struct {
	pc      net.PacketConn
	queries chan heldQuery
}

type heldQuery struct {
	msg  *mdns.Msg
	from net.Addr
}

func newSlowUpstream(t *testing.T) *slowUpstream {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	u := &slowUpstream{pc: pc, queries: make(chan heldQuery, 16)}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(mdns.Msg)
			if m.Unpack(buf[:n]) == nil {
				u.queries <- heldQuery{m, from}
			}
		}
	}()
	return u
}

func (u *slowUpstream) next(t *testing.T) heldQuery {
	t.Helper()
	select {
	case q := <-u.queries:
		return q
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream got no query")
		return heldQuery{}
	}
}

func (u *slowUpstream) answer(t *testing.T, q heldQuery) {
	t.Helper()
	r := new(mdns.Msg).SetReply(q.msg)
	r.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: q.msg.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(192, 0, 2, 7)}}
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.pc.WriteTo(b, q.from); err != nil {
		t.Fatal(err)
	}
}

// With MaxInFlight queries waiting on a slow upstream, the next one is
// answered SERVFAIL without reaching the upstream; once the upstream
// answers, forwarding resumes.
func TestBoundsForwardedQueriesInFlight(t *testing.T) {
	up := newSlowUpstream(t)
	reg := prometheus.NewRegistry()
	_, addr := startWith(t, dns.Config{Upstream: up.pc.LocalAddr().String(), UpstreamAllow: loopback, MaxInFlight: 2, UpstreamTimeout: time.Minute}, reg)

	type result struct {
		r   *mdns.Msg
		err error
	}
	waiting := make(chan result, 2)
	for _, name := range []string{"one.example.com.", "two.example.com."} {
		go func() {
			m := new(mdns.Msg).SetQuestion(name, mdns.TypeA)
			r, _, err := (&mdns.Client{Timeout: time.Minute}).Exchange(m, addr)
			waiting <- result{r, err}
		}()
	}
	held := []heldQuery{up.next(t), up.next(t)}

	if r := query(t, addr, "udp", "three.example.com.", mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("a third query with two in flight: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if r := query(t, addr, "tcp", "three.example.com.", mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("a third query over TCP with two in flight: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if got := sum(t, reg, "atoll_dns_forward_refused_total", "reason", "busy"); got != 2 {
		t.Errorf(`atoll_dns_forward_refused_total{reason="busy"} = %v, want 2`, got)
	}
	select {
	case q := <-up.queries:
		t.Errorf("the upstream got %s beyond the bound", q.msg.Question[0].Name)
	default:
	}

	for _, q := range held {
		up.answer(t, q)
	}
	for range held {
		res := <-waiting
		if res.err != nil || answers(res.r) != "[192.0.2.7]" {
			t.Errorf("a held query: %v %v", res.r, res.err)
		}
	}
	// The slots are free again.
	done := make(chan *mdns.Msg, 1)
	go func() {
		m := new(mdns.Msg).SetQuestion("four.example.com.", mdns.TypeA)
		r, _, _ := (&mdns.Client{Timeout: time.Minute}).Exchange(m, addr)
		done <- r
	}()
	up.answer(t, up.next(t))
	if r := <-done; r == nil || answers(r) != "[192.0.2.7]" {
		t.Errorf("after the held queries were answered: %v", r)
	}
}

// With MaxTCPConns connections open, another client is served only once
// one of them closes.
func TestBoundsTCPConnections(t *testing.T) {
	srv, addr := start(t, dns.Config{MaxTCPConns: 1})
	srv.SetTable(table())
	first, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(c *mdns.Conn, deadline time.Duration) (*mdns.Msg, error) {
		if err := c.WriteMsg(new(mdns.Msg).SetQuestion("backend.mesh.", mdns.TypeA)); err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(deadline))
		return c.ReadMsg()
	}
	if r, err := ask(first, 10*time.Second); err != nil || answers(r) != "[240.0.0.1]" {
		t.Fatalf("first connection: %v %v", r, err)
	}
	second, err := mdns.Dial("tcp", addr) // the kernel completes the handshake
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if r, err := ask(second, 300*time.Millisecond); err == nil {
		t.Fatalf("a second connection was served while the first is open: %v", r)
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if r, err := second.ReadMsg(); err != nil || answers(r) != "[240.0.0.1]" {
		t.Errorf("the second connection once the first closed: %v %v", r, err)
	}
}
