package dnsproxy

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// query is one query a test server received.
type query struct {
	name string
	net  string // "udp" or "tcp"
}

// testServer is a real DNS server on 127.0.0.1, UDP and TCP on one port,
// standing in for the zone's DNS or the cluster DNS.
type testServer struct {
	addr    string
	mu      sync.Mutex
	queries []query
}

func (s *testServer) received() []query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]query(nil), s.queries...)
}

// startServer serves handle on UDP and TCP, recording each query first.
func startServer(t *testing.T, handle func(w dns.ResponseWriter, r *dns.Msg)) *testServer {
	t.Helper()
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: ln.Addr().String()}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := query{name: r.Question[0].Name, net: "udp"}
		if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
			q.net = "tcp"
		}
		s.mu.Lock()
		s.queries = append(s.queries, q)
		s.mu.Unlock()
		handle(w, r)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// answerWith answers every query with one A record of ip.
func answerWith(ip string) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A:   net.ParseIP(ip),
		})
		_ = w.WriteMsg(m)
	}
}

// startProxy runs a proxy to mesh and upstream until the test ends.
func startProxy(t *testing.T, modify func(*Config)) *Proxy {
	t.Helper()
	cfg := Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.Mesh = "127.0.0.1:1"
	cfg.Upstream = "127.0.0.1:1"
	cfg.Timeout = 5 * time.Second
	if modify != nil {
		modify(&cfg)
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// ask sends a query for name over network to addr and returns the answer.
func ask(t *testing.T, network, addr, name string, edns bool) (*dns.Msg, *dns.Msg) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &dns.Client{Net: network, Timeout: 20 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query for %s: %v", network, name, err)
	}
	return m, resp
}

func firstA(t *testing.T, resp *dns.Msg) string {
	t.Helper()
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
		t.Fatalf("answer %s, %d records; want NOERROR with records", dns.RcodeToString[resp.Rcode], len(resp.Answer))
	}
	return resp.Answer[0].(*dns.A).A.String()
}

func TestRouting(t *testing.T) {
	mesh := startServer(t, answerWith("240.0.0.1"))
	upstream := startServer(t, answerWith("10.0.0.9"))
	p := startProxy(t, func(c *Config) { c.Mesh, c.Upstream = mesh.addr, upstream.addr })

	tests := []struct {
		name, network, want string
	}{
		{"backend.mesh.", "udp", "240.0.0.1"},
		{"BACKEND.MESH.", "udp", "240.0.0.1"},
		{"Backend.Mesh.", "tcp", "240.0.0.1"},
		{"mesh.", "udp", "240.0.0.1"},
		{"a.b.mesh.", "tcp", "240.0.0.1"},
		{"example.com.", "udp", "10.0.0.9"},
		{"kubernetes.default.svc.cluster.local.", "tcp", "10.0.0.9"},
		{"notmesh.", "udp", "10.0.0.9"},
		{"mesh.example.com.", "udp", "10.0.0.9"},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.name, func(t *testing.T) {
			req, resp := ask(t, tt.network, p.Addr(), tt.name, false)
			if got := firstA(t, resp); got != tt.want {
				t.Fatalf("%s answered %s, want %s", tt.name, got, tt.want)
			}
			if resp.Id != req.Id {
				t.Fatalf("answer ID %d, query ID %d", resp.Id, req.Id)
			}
			if len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
				t.Fatalf("answer question %v, want %v", resp.Question, req.Question)
			}
		})
	}

	// Each server saw its names exactly as asked, over the client's transport.
	wantMesh := []query{{"backend.mesh.", "udp"}, {"BACKEND.MESH.", "udp"}, {"Backend.Mesh.", "tcp"}, {"mesh.", "udp"}, {"a.b.mesh.", "tcp"}}
	wantUp := []query{{"example.com.", "udp"}, {"kubernetes.default.svc.cluster.local.", "tcp"}, {"notmesh.", "udp"}, {"mesh.example.com.", "udp"}}
	if got := mesh.received(); !equalQueries(got, wantMesh) {
		t.Errorf("zone DNS received %v, want %v", got, wantMesh)
	}
	if got := upstream.received(); !equalQueries(got, wantUp) {
		t.Errorf("cluster DNS received %v, want %v", got, wantUp)
	}
}

func equalQueries(a, b []query) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTruncatedUDPRetriedOverTCP(t *testing.T) {
	const records = 40 // about 1.1 KB: more than 512 bytes
	mesh := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp {
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		for i := range records {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A:   net.IPv4(240, 0, 0, byte(i+1)),
			})
		}
		_ = w.WriteMsg(m)
	})
	p := startProxy(t, func(c *Config) { c.Mesh = mesh.addr })

	// A client with a large enough buffer gets the whole answer over UDP.
	_, resp := ask(t, "udp", p.Addr(), "big.mesh.", true)
	if resp.Truncated || len(resp.Answer) != records {
		t.Fatalf("got %d records, truncated %v; want all %d", len(resp.Answer), resp.Truncated, records)
	}
	want := []query{{"big.mesh.", "udp"}, {"big.mesh.", "tcp"}}
	if got := mesh.received(); !equalQueries(got, want) {
		t.Fatalf("zone DNS received %v, want %v", got, want)
	}

	// A client limited to 512 bytes gets what fits, marked truncated, and
	// its retry over TCP gets everything.
	_, resp = ask(t, "udp", p.Addr(), "big.mesh.", false)
	resp.Compress = true // as it was sent
	if !resp.Truncated || len(resp.Answer) >= records || resp.Len() > dns.MinMsgSize {
		t.Fatalf("512-byte client got %d records in %d bytes, truncated %v", len(resp.Answer), resp.Len(), resp.Truncated)
	}
	_, resp = ask(t, "tcp", p.Addr(), "big.mesh.", false)
	if resp.Truncated || len(resp.Answer) != records {
		t.Fatalf("TCP got %d records, truncated %v; want all %d", len(resp.Answer), resp.Truncated, records)
	}
}

func TestUpstreamDownIsServfail(t *testing.T) {
	// A UDP socket that never answers: the query times out.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A TCP port nothing listens on: the connection is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()

	p := startProxy(t, func(c *Config) {
		c.Upstream = silent.LocalAddr().String()
		c.Mesh = refused
		c.Timeout = 200 * time.Millisecond
	})
	for _, tt := range []struct{ network, name string }{
		{"udp", "example.com."},  // times out
		{"tcp", "backend.mesh."}, // refused
		{"udp", "backend.mesh."}, // refused (ICMP) or times out
	} {
		req, resp := ask(t, tt.network, p.Addr(), tt.name, false)
		if resp.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s %s: rcode %s, want SERVFAIL", tt.network, tt.name, dns.RcodeToString[resp.Rcode])
		}
		if resp.Id != req.Id || len(resp.Question) != 1 || resp.Question[0] != req.Question[0] {
			t.Errorf("%s %s: SERVFAIL does not match the query: %v", tt.network, tt.name, resp)
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	const bound = 3
	arrived := make(chan struct{}, bound)
	release := make(chan struct{})
	upstream := startServer(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if strings.HasPrefix(r.Question[0].Name, "slow") {
			arrived <- struct{}{}
			<-release
		}
		answerWith("10.0.0.9")(w, r)
	})
	p := startProxy(t, func(c *Config) {
		c.Upstream = upstream.addr
		c.MaxInFlight = bound
		c.Timeout = 30 * time.Second
	})

	results := make(chan *dns.Msg, bound)
	for i := range bound {
		network := []string{"udp", "tcp"}[i%2]
		go func() {
			m := new(dns.Msg)
			m.SetQuestion("slow.example.com.", dns.TypeA)
			c := &dns.Client{Net: network, Timeout: 30 * time.Second}
			resp, _, err := c.Exchange(m, p.Addr())
			if err != nil {
				t.Errorf("slow query: %v", err)
			}
			results <- resp
		}()
	}
	for range bound {
		<-arrived // the upstream holds all of them
	}

	// The proxy is full: more queries fail at once, over both transports,
	// without reaching the upstream.
	for _, network := range []string{"udp", "tcp"} {
		_, resp := ask(t, network, p.Addr(), "fast.example.com.", false)
		if resp.Rcode != dns.RcodeServerFailure {
			t.Fatalf("%s query beyond the bound: rcode %s, want SERVFAIL", network, dns.RcodeToString[resp.Rcode])
		}
	}

	close(release)
	for range bound {
		if resp := <-results; resp == nil || resp.Rcode != dns.RcodeSuccess {
			t.Fatalf("held query answered %v, want NOERROR", resp)
		}
	}
	// Slots are given back: a new query is relayed again.
	_, resp := ask(t, "udp", p.Addr(), "fast.example.com.", false)
	if got := firstA(t, resp); got != "10.0.0.9" {
		t.Fatalf("after the burst: %s", got)
	}
	fast := 0
	for _, q := range upstream.received() {
		if q.name == "fast.example.com." {
			fast++
		}
	}
	if fast != 1 {
		t.Fatalf("upstream received %d fast queries, want only the one after the burst", fast)
	}
}

func TestListenConflict(t *testing.T) {
	p := startProxy(t, nil)
	cfg := validConfig()
	cfg.Listen = p.Addr()
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), p.Addr()) {
		t.Fatalf("a second proxy on %s: %v, want an error naming the address", p.Addr(), err)
	}
}

func TestRunStopsAndReleasesThePort(t *testing.T) {
	cfg := validConfig()
	cfg.Listen = "127.0.0.1:0"
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Cancelled before the servers have even started: Run still returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	cfg.Listen = p.Addr()
	again, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("the port of a stopped proxy is still taken: %v", err)
	}
	if err := again.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
}
