package dns

import (
	"encoding/binary"
	"net"
	"slices"
	"time"

	mdns "github.com/miekg/dns"
)

// The fast path answers the queries that make nearly all of a mesh's DNS
// traffic — one IN question for a name under the domain — straight from
// the UDP socket's read loop: no message is decoded or encoded, no
// goroutine started; the reply is the query's header and question followed
// by records packed once per table. Anything else (other classes, ANY,
// the apex, names outside the domain, odd headers, replies that would need
// truncation) returns nil and takes the general path, ServeDNS. Both paths
// give the same answers: TestFastPathMatchesGeneralPath and the fuzz target
// compare them.

// packed answer sections, built once per table. Each record's owner is a
// compression pointer to the question name (offset 12), so the answer
// carries the client's spelling of the name.
type packed struct {
	a, aaaa map[string]packedRRs
}

type packedRRs struct {
	n    uint16
	wire []byte
}

func (s *Server) pack(t *Table) packed {
	p := packed{a: make(map[string]packedRRs, len(t.records)), aaaa: map[string]packedRRs{}}
	for name, e := range t.records {
		if len(e.v4) > 0 {
			var w []byte
			for _, a := range e.v4 {
				ip := a.As4()
				w = s.appendRRHeader(w, mdns.TypeA, 4)
				w = append(w, ip[:]...)
			}
			p.a[name] = packedRRs{uint16(len(e.v4)), w}
		}
		if len(e.v6) > 0 {
			var w []byte
			for _, a := range e.v6 {
				ip := a.As16()
				w = s.appendRRHeader(w, mdns.TypeAAAA, 16)
				w = append(w, ip[:]...)
			}
			p.aaaa[name] = packedRRs{uint16(len(e.v6)), w}
		}
	}
	return p
}

func (s *Server) appendRRHeader(w []byte, rrtype uint16, rdlen uint16) []byte {
	w = append(w, 0xC0, 12) // the question's name
	w = binary.BigEndian.AppendUint16(w, rrtype)
	w = binary.BigEndian.AppendUint16(w, mdns.ClassINET)
	w = binary.BigEndian.AppendUint32(w, s.ttl)
	return binary.BigEndian.AppendUint16(w, rdlen)
}

// packedSOA is the SOA record as the authority section of negative answers.
func (s *Server) packedSOA() []byte {
	buf := make([]byte, 512)
	n, err := mdns.PackRR(s.soa[0], buf, 0, nil, false)
	if err != nil {
		panic("packing the SOA record: " + err.Error()) // built from validated config
	}
	return buf[:n]
}

// fastAnswer appends to out the reply to req, or returns nil when req is
// not an ordinary query this path answers.
func (s *Server) fastAnswer(req, out []byte) ([]byte, int) {
	if len(req) < 12+5 {
		return nil, 0
	}
	// Header: a query (QR 0, opcode QUERY), one question, nothing else but
	// maybe an OPT record.
	if req[2]&0xF8 != 0 || binary.BigEndian.Uint16(req[4:]) != 1 ||
		binary.BigEndian.Uint16(req[6:]) != 0 || binary.BigEndian.Uint16(req[8:]) != 0 {
		return nil, 0
	}
	arcount := binary.BigEndian.Uint16(req[10:])
	if arcount > 1 {
		return nil, 0
	}
	// The question name, lowercased into presentation form ("a.mesh.").
	var nameBuf [256]byte
	name := nameBuf[:0]
	off := 12
	for {
		if off >= len(req) {
			return nil, 0
		}
		l := int(req[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(req) || len(name)+l+1 > 254 {
			return nil, 0 // compression pointers, extended labels, overlong
		}
		for _, c := range req[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return nil, 0 // would need escaping: the general path
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += l
	}
	if off+4 > len(req) {
		return nil, 0
	}
	qend := off + 4
	qtype := binary.BigEndian.Uint16(req[off:])
	if binary.BigEndian.Uint16(req[off+2:]) != mdns.ClassINET || qtype == mdns.TypeANY {
		return nil, 0
	}
	// The domain itself, and names outside it, take the general path.
	d := s.domain
	if len(name) <= len(d) || string(name[len(name)-len(d):]) != d || name[len(name)-len(d)-1] != '.' {
		return nil, 0
	}
	// An OPT record, EDNS version 0, ends the message.
	size, edns := mdns.MinMsgSize, false
	if arcount == 1 {
		o := qend
		if o+11 > len(req) || req[o] != 0 || binary.BigEndian.Uint16(req[o+1:]) != mdns.TypeOPT || req[o+6] != 0 {
			return nil, 0
		}
		if o+11+int(binary.BigEndian.Uint16(req[o+9:])) != len(req) {
			return nil, 0
		}
		size = min(max(int(binary.BigEndian.Uint16(req[o+3:])), mdns.MinMsgSize), 4096)
		edns = true
	} else if qend != len(req) {
		return nil, 0
	}

	t := s.table.Load()
	var ans packedRRs
	rcode := mdns.RcodeSuccess
	if _, known := t.records[string(name)]; known {
		switch qtype {
		case mdns.TypeA:
			ans = t.packed.a[string(name)]
		case mdns.TypeAAAA:
			ans = t.packed.aaaa[string(name)]
		}
	} else if !t.parents[string(name)] {
		rcode = mdns.RcodeNameError
	}

	out = append(out, req[0], req[1],
		0x80|0x04|req[2]&0x01,   // QR, AA, RD as asked
		req[3]&0x10|byte(rcode), // CD as asked; RA never set
		0, 1)
	out = binary.BigEndian.AppendUint16(out, ans.n)
	if ans.n > 0 {
		out = append(out, 0, 0)
	} else {
		out = append(out, 0, 1) // the SOA: NODATA or NXDOMAIN
	}
	if edns {
		out = append(out, 0, 1)
	} else {
		out = append(out, 0, 0)
	}
	out = append(out, req[12:qend]...)
	if ans.n > 0 {
		out = append(out, ans.wire...)
	} else {
		out = append(out, s.soaWire...)
	}
	if edns {
		out = append(out, 0, 0, 41, byte(size>>8), byte(size), 0, 0, 0, 0, 0, 0)
	}
	if len(out) > size {
		return nil, 0 // needs truncation: the general path does it
	}
	return out, rcode
}

// fastReader reads a UDP socket for miekg/dns's server, answering what
// the fast path can itself and handing the rest on.
type fastReader struct {
	mdns.Reader
	s        *Server
	buf, out []byte
}

func (r *fastReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *mdns.SessionUDP, error) {
	for {
		n, session, err := mdns.ReadFromSessionUDP(conn, r.buf)
		if err != nil {
			return nil, nil, err
		}
		start := time.Now()
		if resp, rcode := r.s.fastAnswer(r.buf[:n], r.out[:0]); resp != nil {
			if _, err := mdns.WriteToSessionUDP(conn, resp, session); err != nil {
				r.s.log.Debug("writing a DNS answer failed", "error", err)
			}
			r.s.count(rcode)
			r.s.latency.Observe(time.Since(start).Seconds())
			continue
		}
		return slices.Clone(r.buf[:n]), session, nil
	}
}
