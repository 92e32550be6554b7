package dns_test

import (
	"net"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/dns"
)

// generalAnswer is ServeDNS's reply to packet, as a client decodes it, or
// nil when it does not answer.
func generalAnswer(t *testing.T, srv *dns.Server, packet []byte) *mdns.Msg {
	t.Helper()
	req := new(mdns.Msg)
	if err := req.Unpack(packet); err != nil {
		return nil
	}
	w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5353}}
	srv.ServeDNS(w, req)
	if w.msg == nil {
		return nil
	}
	b, err := w.msg.Pack()
	if err != nil {
		t.Fatalf("the general path's answer does not pack: %v", err)
	}
	out := new(mdns.Msg)
	if err := out.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameAnswer compares two replies as a client sees them; names are
// compared without case (the fast path answers with the query's spelling).
func sameAnswer(t *testing.T, what string, packet []byte, fast []byte, general *mdns.Msg) {
	t.Helper()
	got := new(mdns.Msg)
	if err := got.Unpack(fast); err != nil {
		t.Fatalf("%s: the fast path's answer does not decode: %v (%x)", what, err, fast)
	}
	if general == nil {
		t.Fatalf("%s: the fast path answered %x, which the general path does not answer:\n%v", what, packet, got)
	}
	if g, w := strings.ToLower(got.String()), strings.ToLower(general.String()); g != w {
		t.Fatalf("%s: the paths differ.\nfast:\n%s\ngeneral:\n%s", what, got, general)
	}
}

func TestFastPathMatchesGeneralPath(t *testing.T) {
	srv := newHandler()
	names := []string{"backend.mesh.", "BackEnd.MESH.", "web.mesh.", "nope.mesh.", "backend.default.svc.80.mesh.",
		"default.svc.80.mesh.", "svc.80.mesh.", "many.mesh.", "mesh.", "example.com.", "a.b.c.nope.mesh.",
		"back*end.mesh.", "backend.mesh.example.", "x-y_z.mesh."}
	types := []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypeANY, mdns.TypeSOA}
	fastAnswered := map[string]bool{}
	for _, name := range names {
		for _, qtype := range types {
			for _, edns := range []uint16{0, 100, 512, 1232, 4096, 65000} {
				for _, bits := range []struct{ rd, cd bool }{{true, false}, {false, true}} {
					q := new(mdns.Msg)
					q.SetQuestion(name, qtype)
					q.Id = 4242
					q.RecursionDesired, q.CheckingDisabled = bits.rd, bits.cd
					if edns > 0 {
						q.SetEdns0(edns, edns == 1232)
					}
					packet, err := q.Pack()
					if err != nil {
						t.Fatal(err)
					}
					what := mdns.TypeToString[qtype] + " " + name
					fast, rcode := srv.FastAnswer(packet)
					if fast == nil {
						continue
					}
					fastAnswered[what] = true
					general := generalAnswer(t, srv, packet)
					sameAnswer(t, what, packet, fast, general)
					if rcode != general.Rcode {
						t.Fatalf("%s: the fast path counts rcode %d, answered %d", what, rcode, general.Rcode)
					}
				}
			}
		}
	}
	// The fast path must take the ordinary queries, and leave the others.
	for _, want := range []string{"A backend.mesh.", "AAAA BackEnd.MESH.", "A nope.mesh.", "MX web.mesh.",
		"A backend.default.svc.80.mesh.", "AAAA svc.80.mesh.", "A x-y_z.mesh."} {
		if !fastAnswered[want] {
			t.Errorf("the fast path did not answer %s", want)
		}
	}
	for _, not := range []string{"ANY backend.mesh.", "A mesh.", "A example.com.", "A back*end.mesh.", "A backend.mesh.example."} {
		if fastAnswered[not] {
			t.Errorf("the fast path answered %s, which belongs to the general path", not)
		}
	}
	// 100 addresses do not fit 512 bytes: truncation is the general path's.
	q := new(mdns.Msg).SetQuestion("many.mesh.", mdns.TypeA)
	packet, _ := q.Pack()
	if fast, _ := srv.FastAnswer(packet); fast != nil {
		t.Error("the fast path answered a reply that needs truncation")
	}
}

// FuzzFastPath: for any packet the fast path either declines or answers
// exactly as the general path does.
func FuzzFastPath(f *testing.F) {
	for _, name := range []string{"backend.mesh.", "nope.mesh.", "svc.80.mesh.", "web.mesh."} {
		for _, edns := range []bool{false, true} {
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			if edns {
				m.SetEdns0(1232, false)
			}
			b, _ := m.Pack()
			f.Add(b)
		}
	}
	srv := newHandler()
	f.Fuzz(func(t *testing.T, packet []byte) {
		fast, _ := srv.FastAnswer(packet)
		if fast == nil {
			return
		}
		sameAnswer(t, "fuzzed packet", packet, fast, generalAnswer(t, srv, packet))
	})
}

// BenchmarkFastPath is the fast path alone: one A query for a known name,
// answered into a reused buffer.
func BenchmarkFastPath(b *testing.B) {
	srv := newHandler()
	q := new(mdns.Msg).SetQuestion("backend.mesh.", mdns.TypeA)
	packet, _ := q.Pack()
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if resp, _ := srv.FastAnswerInto(packet, out[:0]); resp == nil {
			b.Fatal("not answered")
		}
	}
}
