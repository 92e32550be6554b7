package dns_test

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/dns"
)

// recorder is a ResponseWriter that keeps what the handler wrote.
type recorder struct {
	remote net.Addr
	msg    *mdns.Msg
}

func (r *recorder) LocalAddr() net.Addr        { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr       { return r.remote }
func (r *recorder) WriteMsg(m *mdns.Msg) error { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) {
	r.msg = new(mdns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// newHandler answers for mesh; it forwards other names to a documentation
// address, but only for clients in 10.0.0.0/8, which no test client is.
func newHandler() *dns.Server {
	srv := dns.NewServer(dns.Config{Domain: "mesh", TTL: 5e9, Upstream: "192.0.2.53:53",
		UpstreamAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	srv.SetTable(table())
	return srv
}

// FuzzServeDNS feeds arbitrary packets to the handler: it never panics,
// answers every query it answers with the query's ID, never sets RA,
// refuses every name outside the domain to a client it does not forward
// for, and a query never changes what the server answers next.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"backend.mesh.", mdns.TypeA}, {"nope.mesh.", mdns.TypeAAAA}, {"example.com.", mdns.TypeA}, {"many.mesh.", mdns.TypeANY}} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 2, 3})
	srv := newHandler()
	f.Fuzz(func(t *testing.T, packet []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(packet); err != nil {
			return // the server drops what does not parse
		}
		w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5353}}
		srv.ServeDNS(w, req)
		if w.msg != nil {
			if w.msg.Id != req.Id || w.msg.RecursionAvailable {
				t.Fatalf("answer id %d (query %d), RA %v", w.msg.Id, req.Id, w.msg.RecursionAvailable)
			}
			if _, err := w.msg.Pack(); err != nil {
				t.Fatalf("the answer does not pack: %v", err)
			}
			if q := req.Question; !req.Response && req.Opcode == mdns.OpcodeQuery && len(q) == 1 && !inMesh(q[0].Name) && w.msg.Rcode != mdns.RcodeRefused {
				t.Fatalf("%s from a client not forwarded for: %s, want REFUSED", q[0].Name, mdns.RcodeToString[w.msg.Rcode])
			}
		}
		probe := new(mdns.Msg)
		probe.SetQuestion("backend.mesh.", mdns.TypeA)
		pw := &recorder{remote: w.remote}
		srv.ServeDNS(pw, probe)
		if pw.msg == nil || len(pw.msg.Answer) != 1 {
			t.Fatalf("after %x the server no longer answers backend.mesh: %v", packet, pw.msg)
		}
	})
}

func inMesh(name string) bool {
	name = strings.ToLower(name)
	return name == "mesh." || strings.HasSuffix(name, ".mesh.")
}

// BenchmarkServeDNS is the handler alone: one A query for a known name.
func BenchmarkServeDNS(b *testing.B) {
	srv := newHandler()
	req := new(mdns.Msg)
	req.SetQuestion("backend.mesh.", mdns.TypeA)
	w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5353}}
	b.ReportAllocs()
	for b.Loop() {
		srv.ServeDNS(w, req)
	}
}
