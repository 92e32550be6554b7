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
// expected rcode and the same answer: the same AA flag and the same
// records in every section (EDNS0's OPT aside). It returns what it
// checked, to be printed.
func checkAnswers(atollAddr, coreAddr string, views []vip.View) (string, error) {
	want := map[string]vip.View{}
	for _, v := range views {
		want[strings.ToLower(v.Service)] = v
	}
	count := len(views)
	names := []string{name(0), name(count / 2), name(count - 1), nxName(0), nxName(1)}
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
						return "", fmt.Errorf("atoll, %s: %w", shape, err)
					}
					c, err := exchange(m, network, coreAddr)
					if err != nil {
						return "", fmt.Errorf("CoreDNS, %s: %w", shape, err)
					}
					if err := expect(a, want[n], qtype, edns); err != nil {
						return "", fmt.Errorf("atoll, %s: %w\n%s", shape, err, a)
					}
					if err := same(a, c); err != nil {
						return "", fmt.Errorf("%s: %w\natoll:\n%s\nCoreDNS:\n%s", shape, err, a, c)
					}
					checked++
				}
			}
		}
	}
	return fmt.Sprintf("answers checked: %d queries of %d shapes (%d names × A, AAAA × UDP, TCP × EDNS0 on, off) answered alike by both servers: rcode, AA flag, every section's records", checked*2, checked, len(names)), nil
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

// same compares the rcodes, the AA flags and the records of every section
// but EDNS0's OPT record.
func same(a, c *mdns.Msg) error {
	if a.Rcode != c.Rcode {
		return fmt.Errorf("rcode %s vs %s", mdns.RcodeToString[a.Rcode], mdns.RcodeToString[c.Rcode])
	}
	if a.Authoritative != c.Authoritative {
		return fmt.Errorf("AA flag %v vs %v", a.Authoritative, c.Authoritative)
	}
	for _, sec := range []struct {
		name string
		a, c []mdns.RR
	}{{"answer", a.Answer, c.Answer}, {"authority", a.Ns, c.Ns}, {"additional", a.Extra, c.Extra}} {
		if x, y := rrStrings(sec.a), rrStrings(sec.c); !slices.Equal(x, y) {
			return fmt.Errorf("%s section %q vs %q", sec.name, x, y)
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
