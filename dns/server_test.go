package dns_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-mesh/atoll/dns"
)

func table() *dns.Table {
	names := map[string][]netip.Addr{
		"backend": {netip.MustParseAddr("240.0.0.1"), netip.MustParseAddr("fd00::1")},
		"web":     {netip.MustParseAddr("240.0.0.2")},
	}
	for _, n := range dns.ServiceNames("backend_default_svc_80") {
		names[n] = []netip.Addr{netip.MustParseAddr("240.0.0.3")}
	}
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{240, 1, 0, byte(i)}))
	}
	names["many"] = many
	return dns.NewTable("mesh", names)
}

func start(t *testing.T, cfg dns.Config) (*dns.Server, string) {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith starts a server whose metrics go to reg.
func startWith(t *testing.T, cfg dns.Config, reg prometheus.Registerer) (*dns.Server, string) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Domain == "" {
		cfg.Domain = "mesh"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	srv := dns.NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for srv.Addr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		select {
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	return srv, srv.Addr().String()
}

func query(t *testing.T, addr, net, name string, qtype uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &mdns.Client{Net: net, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", net, name, mdns.TypeToString[qtype], err)
	}
	return r
}

func answers(r *mdns.Msg) string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.AAAA:
			out = append(out, v.AAAA.String())
		default:
			out = append(out, mdns.TypeToString[rr.Header().Rrtype])
		}
	}
	return fmt.Sprint(out)
}

func hasSOA(r *mdns.Msg) bool {
	return len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == mdns.TypeSOA
}

func TestAnswers(t *testing.T) {
	srv, addr := start(t, dns.Config{})
	srv.SetTable(table())
	cases := []struct {
		name, qname string
		qtype       uint16
		rcode       int
		answer      string
		soa         bool
	}{
		{"A", "backend.mesh.", mdns.TypeA, mdns.RcodeSuccess, "[240.0.0.1]", false},
		{"case folding", "BackEnd.MESH.", mdns.TypeA, mdns.RcodeSuccess, "[240.0.0.1]", false},
		{"AAAA", "backend.mesh.", mdns.TypeAAAA, mdns.RcodeSuccess, "[fd00::1]", false},
		{"known name, no AAAA: NODATA", "web.mesh.", mdns.TypeAAAA, mdns.RcodeSuccess, "[]", true},
		{"known name, other type: NODATA", "backend.mesh.", mdns.TypeTXT, mdns.RcodeSuccess, "[]", true},
		{"unknown name: NXDOMAIN", "nope.mesh.", mdns.TypeA, mdns.RcodeNameError, "[]", true},
		{"outside the domain: REFUSED", "example.com.", mdns.TypeA, mdns.RcodeRefused, "[]", false},
		{"kubernetes form", "backend.default.svc.80.mesh.", mdns.TypeA, mdns.RcodeSuccess, "[240.0.0.3]", false},
		{"kubernetes service tag form", "backend_default_svc_80.mesh.", mdns.TypeA, mdns.RcodeSuccess, "[240.0.0.3]", false},
		{"empty non-terminal: NODATA", "default.svc.80.mesh.", mdns.TypeA, mdns.RcodeSuccess, "[]", true},
		{"ANY is minimal", "backend.mesh.", mdns.TypeANY, mdns.RcodeSuccess, "[240.0.0.1]", false},
		{"apex SOA", "mesh.", mdns.TypeSOA, mdns.RcodeSuccess, "[SOA]", false},
	}
	for _, c := range cases {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(c.name+"/"+network, func(t *testing.T) {
				r := query(t, addr, network, c.qname, c.qtype, 0)
				if r.Rcode != c.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[c.rcode])
				}
				if got := answers(r); got != c.answer {
					t.Errorf("answer %s, want %s", got, c.answer)
				}
				if hasSOA(r) != c.soa {
					t.Errorf("SOA in authority: %v, want %v (%v)", hasSOA(r), c.soa, r.Ns)
				}
				if r.RecursionAvailable {
					t.Error("RA set: the server does not recurse")
				}
				if c.rcode != mdns.RcodeRefused && !r.Authoritative {
					t.Error("AA not set for the server's own domain")
				}
				// Names compare case-insensitively (RFC 4343); the question
				// is echoed exactly, as resolvers using 0x20 randomisation check.
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 5 || !strings.EqualFold(rr.Header().Name, c.qname) {
						t.Errorf("record %v: want TTL 5 and the query's name", rr)
					}
				}
				if len(r.Question) != 1 || r.Question[0].Name != c.qname {
					t.Errorf("question not echoed exactly: %v", r.Question)
				}
			})
		}
	}
}

func TestTruncationAndEDNS(t *testing.T) {
	srv, addr := start(t, dns.Config{})
	srv.SetTable(table())

	plain := query(t, addr, "udp", "many.mesh.", mdns.TypeA, 0)
	if !plain.Truncated || wireLen(t, plain) > mdns.MinMsgSize {
		t.Errorf("100 records over UDP without EDNS: TC %v, %d bytes; want TC and at most 512", plain.Truncated, wireLen(t, plain))
	}
	big := query(t, addr, "udp", "many.mesh.", mdns.TypeA, 4096)
	if big.Truncated || len(big.Answer) != 100 || big.IsEdns0() == nil {
		t.Errorf("with EDNS0 4096: TC %v, %d answers, OPT %v; want all 100 and an OPT record", big.Truncated, len(big.Answer), big.IsEdns0())
	}
	small := query(t, addr, "udp", "many.mesh.", mdns.TypeA, 1000)
	if !small.Truncated || wireLen(t, small) > 1000 || len(small.Answer) <= len(plain.Answer) {
		t.Errorf("with EDNS0 1000: TC %v, %d bytes, %d answers; want TC, at most 1000 bytes and more answers than in 512", small.Truncated, wireLen(t, small), len(small.Answer))
	}
	tcp := query(t, addr, "tcp", "many.mesh.", mdns.TypeA, 0)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("over TCP: TC %v, %d answers; want all 100", tcp.Truncated, len(tcp.Answer))
	}
}

// wireLen is the size of r as sent, with name compression.
func wireLen(t *testing.T, r *mdns.Msg) int {
	r.Compress = true
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func TestTableSwap(t *testing.T) {
	srv, addr := start(t, dns.Config{})
	if r := query(t, addr, "udp", "backend.mesh.", mdns.TypeA, 0); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("empty table: %s", mdns.RcodeToString[r.Rcode])
	}
	srv.SetTable(table())
	if r := query(t, addr, "udp", "backend.mesh.", mdns.TypeA, 0); answers(r) != "[240.0.0.1]" {
		t.Fatalf("after SetTable: %v", r)
	}
}

func TestConfigurableDomainAndTTL(t *testing.T) {
	srv, addr := start(t, dns.Config{Domain: "internal.example", TTL: 30 * time.Second})
	srv.SetTable(dns.NewTable("internal.example", map[string][]netip.Addr{"backend": {netip.MustParseAddr("240.0.0.9")}}))
	r := query(t, addr, "udp", "backend.internal.example.", mdns.TypeA, 0)
	if answers(r) != "[240.0.0.9]" || r.Answer[0].Header().Ttl != 30 {
		t.Fatalf("got %v", r)
	}
	if r := query(t, addr, "udp", "backend.mesh.", mdns.TypeA, 0); r.Rcode != mdns.RcodeRefused {
		t.Errorf("the default domain answered while another was configured: %s", mdns.RcodeToString[r.Rcode])
	}
}

func TestForwardsOutsideTheDomainToUpstream(t *testing.T) {
	upstream, upAddr := start(t, dns.Config{Domain: "example.com"})
	upstream.SetTable(dns.NewTable("example.com", map[string][]netip.Addr{"www": {netip.MustParseAddr("192.0.2.1")}}))
	srv, addr := start(t, dns.Config{Upstream: upAddr, UpstreamAllow: loopback})
	srv.SetTable(table())
	for _, network := range []string{"udp", "tcp"} {
		if r := query(t, addr, network, "www.example.com.", mdns.TypeA, 0); answers(r) != "[192.0.2.1]" {
			t.Errorf("forwarded over %s: %v", network, r)
		}
	}
	if r := query(t, addr, "udp", "backend.mesh.", mdns.TypeA, 0); answers(r) != "[240.0.0.1]" {
		t.Errorf("own domain with an upstream set: %v", r)
	}
	// An upstream that does not answer gives SERVFAIL within the timeout.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	srv2, addr2 := start(t, dns.Config{Upstream: dead.LocalAddr().String(), UpstreamTimeout: 200 * time.Millisecond, UpstreamAllow: loopback})
	_ = srv2
	if r := query(t, addr2, "udp", "www.example.com.", mdns.TypeA, 0); r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestServiceNames(t *testing.T) {
	cases := map[string]string{
		"backend":                "[backend]",
		"Backend":                "[backend]",
		"backend_default_svc_80": "[backend_default_svc_80 backend.default.svc.80]",
		"a_b_svc_x":              "[a_b_svc_x]",
		"a_b_c_80":               "[a_b_c_80]",
	}
	for in, want := range cases {
		if got := fmt.Sprint(dns.ServiceNames(in)); got != want {
			t.Errorf("ServiceNames(%q) = %s, want %s", in, got, want)
		}
	}
}

// A resolver that keeps one TCP connection and pipelines its queries gets
// every one answered, however many (the server has no per-connection query
// limit, as CoreDNS has none: a limit closed the connection with queries
// sent on it unanswered).
func TestManyQueriesPipelinedOnOneTCPConnection(t *testing.T) {
	srv, addr := start(t, dns.Config{})
	srv.SetTable(table())
	conn, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 500
	for i := range n {
		q := new(mdns.Msg)
		q.SetQuestion("many.mesh.", mdns.TypeA)
		q.Id = uint16(i + 1)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	seen := map[uint16]bool{}
	for len(seen) < n {
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("after %d of %d answers: %v", len(seen), n, err)
		}
		seen[r.Id] = true
	}
}
