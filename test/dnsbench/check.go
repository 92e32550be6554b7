package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/internal/vip"
)

// checkAnswers asks both servers a handful of queries of every shape the
// load has (A and AAAA, names that exist and names that do not, UDP and
// TCP, with and without EDNS0) and fails unless both answer each with the
// expected rcode and the same records: the same answer section, and for
// negative answers the same SOA. It returns notes on differences outside
// those (records CoreDNS adds to other sections), to be printed.
func checkAnswers(atollAddr, coreAddr string, views []vip.View) ([]string, error) {
	want := map[string]vip.View{}
	for _, v := range views {
		want[strings.ToLower(v.Service)] = v
	}
	count := len(views)
	names := []string{name(0), name(count / 2), name(count - 1), nxName(0), nxName(1)}
	notes := map[string]bool{}
	checked := 0
	for _, n := range names {
		for _, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
			for _, network := range []string{"udp", "tcp"} {
				for _, edns := range []bool{true, false} {
					m := new(mdns.Msg).SetQuestion(n+".mesh.", qtype)
					if edns {
						m.SetEdns0(1232, false)
					}
					shape := fmt.Sprintf("%s %s over %s (EDNS0 %v)", n, mdns.TypeToString[qtype], network, edns)
					a, err := exchange(m, network, atollAddr)
					if err != nil {
						return nil, fmt.Errorf("atoll, %s: %w", shape, err)
					}
					c, err := exchange(m, network, coreAddr)
					if err != nil {
						return nil, fmt.Errorf("CoreDNS, %s: %w", shape, err)
					}
					if err := expect(a, want[n], qtype, edns); err != nil {
						return nil, fmt.Errorf("atoll, %s: %w\n%s", shape, err, a)
					}
					if err := same(a, c); err != nil {
						return nil, fmt.Errorf("%s: %w\natoll:\n%s\nCoreDNS:\n%s", shape, err, a, c)
					}
					for _, d := range extras(a, c) {
						notes[d] = true
					}
					checked++
				}
			}
		}
	}
	out := []string{fmt.Sprintf("%d queries of %d shapes answered alike by both servers (rcode, answer section, SOA of negative answers)", checked*2, checked)}
	for d := range notes {
		out = append(out, d)
	}
	slices.Sort(out[1:])
	return out, nil
}

func exchange(m *mdns.Msg, network, addr string) (*mdns.Msg, error) {
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// expect checks atoll's answer against the zone's VIP view: the name's A
// or AAAA records when it has them, NODATA (NOERROR, no answer, the SOA)
// when it has none of the type, NXDOMAIN with the SOA for unknown names.
func expect(r *mdns.Msg, v vip.View, qtype uint16, edns bool) error {
	if edns != (r.IsEdns0() != nil) {
		return fmt.Errorf("EDNS0 in the query %v, in the answer %v", edns, r.IsEdns0() != nil)
	}
	addr := v.VIP
	if qtype == mdns.TypeAAAA {
		addr = v.VIP6
	}
	switch {
	case v.Service == "":
		if r.Rcode != mdns.RcodeNameError || len(r.Answer) != 0 || !hasSOA(r) {
			return fmt.Errorf("want NXDOMAIN with the SOA")
		}
	case addr == "":
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 || !hasSOA(r) {
			return fmt.Errorf("want NODATA (NOERROR, no answer, the SOA)")
		}
	default:
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+addr) {
			return fmt.Errorf("want the one record %s", addr)
		}
	}
	return nil
}

func hasSOA(r *mdns.Msg) bool {
	return slices.ContainsFunc(r.Ns, func(rr mdns.RR) bool { return rr.Header().Rrtype == mdns.TypeSOA })
}

// same compares the rcode, the answer sections and, for negative answers,
// the SOA in the authority sections.
func same(a, c *mdns.Msg) error {
	if a.Rcode != c.Rcode {
		return fmt.Errorf("rcode %s vs %s", mdns.RcodeToString[a.Rcode], mdns.RcodeToString[c.Rcode])
	}
	if x, y := rrStrings(a.Answer), rrStrings(c.Answer); !slices.Equal(x, y) {
		return fmt.Errorf("answer %q vs %q", x, y)
	}
	if len(a.Answer) == 0 {
		if x, y := soas(a), soas(c); !slices.Equal(x, y) {
			return fmt.Errorf("SOA %q vs %q", x, y)
		}
	}
	return nil
}

func rrStrings(rrs []mdns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

func soas(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Ns {
		if rr.Header().Rrtype == mdns.TypeSOA {
			out = append(out, rr.String())
		}
	}
	return out
}

// extras describes what else differs: records in the authority or
// additional sections only one server sends, and the AA flag.
func extras(a, c *mdns.Msg) []string {
	var out []string
	kind := "positive"
	if len(a.Answer) == 0 {
		kind = "negative"
	}
	if x, y := rrStrings(a.Ns), rrStrings(c.Ns); !slices.Equal(x, y) {
		out = append(out, fmt.Sprintf("note: authority section of %s answers: atoll %d records, CoreDNS %d (%s)", kind, len(x), len(y), strings.Join(types(c.Ns), " ")))
	}
	if x, y := rrStrings(a.Extra), rrStrings(c.Extra); !slices.Equal(x, y) {
		out = append(out, fmt.Sprintf("note: additional section of %s answers: atoll %d records, CoreDNS %d (%s)", kind, len(x), len(y), strings.Join(types(c.Extra), " ")))
	}
	if a.Authoritative != c.Authoritative {
		out = append(out, fmt.Sprintf("note: AA flag of %s answers: atoll %v, CoreDNS %v", kind, a.Authoritative, c.Authoritative))
	}
	return out
}

func types(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, mdns.TypeToString[rr.Header().Rrtype])
		}
	}
	return out
}
