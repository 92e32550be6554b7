package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Config configures the server.
type Config struct {
	// Addr is host:port for UDP and TCP; port 0 picks a free one.
	Addr string
	// Sockets, when set, are Addr already bound (Listen): Run serves on
	// them instead of binding Addr, so a caller learns of a taken port
	// before it starts anything.
	Sockets *Sockets
	// Domain is the zone the server is authoritative for ("mesh").
	Domain string
	// TTL of answers, and of negative answers (SOA minimum).
	TTL time.Duration
	// Upstream, host:port, receives queries outside Domain; empty refuses them.
	Upstream string
	// UpstreamTimeout bounds a forwarded query.
	UpstreamTimeout time.Duration
	// UpstreamAllow are the client networks whose queries outside Domain
	// are forwarded; others are answered REFUSED. Empty forwards for
	// nobody (DefaultUpstreamAllow is what a zone uses by default).
	UpstreamAllow []netip.Prefix
	// MaxInFlight bounds the queries forwarded at once; more are answered
	// SERVFAIL. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// MaxTCPConns bounds the TCP connections served at once; more wait to
	// be accepted. 0 means DefaultMaxTCPConns.
	MaxTCPConns int
}

// Server answers DNS queries from the current Table.
type Server struct {
	cfg    Config
	domain string
	ttl    uint32
	table  atomic.Pointer[answers]
	soa    []mdns.RR
	// soaWire is the SOA packed as the fast path's authority section.
	soaWire []byte
	log     *slog.Logger
	fwd     *forwarder

	queries *prometheus.CounterVec
	byRcode [mdns.RcodeBadCookie + 1]prometheus.Counter
	latency prometheus.Histogram

	udpAddr, tcpAddr atomic.Value // net.Addr once bound
}

// NewServer returns a server with an empty table; metrics go to reg.
func NewServer(cfg Config, log *slog.Logger, reg prometheus.Registerer) *Server {
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = 2 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = DefaultMaxTCPConns
	}
	s := &Server{
		cfg: cfg, domain: fqdn(cfg.Domain), ttl: uint32(cfg.TTL / time.Second), log: log,
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_dns_queries_total",
			Help: "DNS queries answered, by response code.",
		}, []string{"rcode"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atoll_dns_query_duration_seconds",
			Help:    "Time to answer a DNS query (forwarded ones included).",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}),
	}
	if reg != nil {
		reg.MustRegister(s.queries, s.latency)
	}
	s.fwd = newForwarder(cfg)
	s.fwd.metrics(reg)
	for code := range s.byRcode {
		s.byRcode[code] = s.queries.WithLabelValues(rcodeName(code))
	}
	s.soa = []mdns.RR{s.soaRR()}
	s.soaWire = s.packedSOA()
	s.SetTable(NewTable(cfg.Domain, nil))
	return s
}

func rcodeName(code int) string {
	if n, ok := mdns.RcodeToString[code]; ok {
		return n
	}
	return fmt.Sprint(code)
}

// answers is a Table with its records built once, shared by every query:
// answering allocates no records.
type answers struct {
	*Table
	a, aaaa map[string][]mdns.RR
	packed  packed // for the fast path
}

// SetTable swaps in a new table; lookups in flight finish on the old one.
func (s *Server) SetTable(t *Table) {
	ans := &answers{Table: t, a: map[string][]mdns.RR{}, aaaa: map[string][]mdns.RR{}}
	for name, e := range t.records {
		ans.a[name] = s.rrs(name, e.v4, nil)
		ans.aaaa[name] = s.rrs(name, nil, e.v6)
	}
	ans.packed = s.pack(t)
	s.table.Store(ans)
}

func (s *Server) soaRR() mdns.RR {
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: s.domain, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: s.ttl},
		Ns:      "ns." + s.domain,
		Mbox:    "hostmaster." + s.domain,
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: s.ttl,
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	start := time.Now()
	m := s.answer(w, r)
	if m == nil {
		return // forwarded and already written, or nothing to answer
	}
	s.reply(w, r, m)
	s.count(m.Rcode)
	s.latency.Observe(time.Since(start).Seconds())
}

func (s *Server) count(rcode int) {
	if rcode >= 0 && rcode < len(s.byRcode) {
		s.byRcode[rcode].Inc()
	}
}

// answer builds the response, or returns nil when it handled the query.
func (s *Server) answer(w mdns.ResponseWriter, r *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	if r.Response {
		return nil // never answer answers
	}
	if r.Opcode != mdns.OpcodeQuery {
		return m.SetRcode(r, mdns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return m.SetRcode(r, mdns.RcodeFormatError)
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	inZone := name == s.domain || strings.HasSuffix(name, "."+s.domain)
	if !inZone {
		resp, rcode := s.fwd.forward(w, r)
		if resp == nil {
			return m.SetRcode(r, rcode)
		}
		resp.Id = r.Id
		return resp
	}
	// The reply shares the question (it is not modified) and prebuilt
	// records, so it costs one allocation.
	m.Id, m.Response, m.Opcode = r.Id, true, r.Opcode
	m.RecursionDesired, m.CheckingDisabled = r.RecursionDesired, r.CheckingDisabled
	m.Question = r.Question
	m.Authoritative = true
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		m.Ns = s.soa
		return m
	}
	t := s.table.Load()
	_, known := t.records[name]
	switch {
	case name == s.domain:
		if q.Qtype == mdns.TypeSOA || q.Qtype == mdns.TypeANY {
			m.Answer = s.soa
		} else {
			m.Ns = s.soa
		}
	case known:
		switch q.Qtype {
		case mdns.TypeA:
			m.Answer = t.a[name]
		case mdns.TypeAAAA:
			m.Answer = t.aaaa[name]
		case mdns.TypeANY:
			// Minimal answer to ANY (RFC 8482): one address type.
			if m.Answer = t.a[name]; len(m.Answer) == 0 {
				m.Answer = t.aaaa[name]
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = s.soa // NODATA
		}
	case t.parents[name]:
		m.Ns = s.soa // an empty non-terminal: NODATA
	default:
		m.Rcode = mdns.RcodeNameError
		m.Ns = s.soa
	}
	return m
}

// rrs answers with the query's own spelling of the name.
func (s *Server) rrs(name string, v4, v6 []netip.Addr) []mdns.RR {
	out := make([]mdns.RR, 0, len(v4)+len(v6))
	for _, a := range v4 {
		ip := a.As4()
		out = append(out, &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: s.ttl}, A: net.IP(ip[:])})
	}
	for _, a := range v6 {
		ip := a.As16()
		out = append(out, &mdns.AAAA{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: s.ttl}, AAAA: net.IP(ip[:])})
	}
	return out
}

// reply writes m, sized for the transport: over UDP at most 512 bytes, or
// the client's EDNS0 buffer size, truncated with TC set when larger so the
// client retries over TCP.
func (s *Server) reply(w mdns.ResponseWriter, r *mdns.Msg, m *mdns.Msg) {
	size := mdns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		size = min(size, 4096)
		m.SetEdns0(uint16(size), false)
	}
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		size = mdns.MaxMsgSize
	}
	// The uncompressed length is an upper bound computed without
	// allocating; only answers that may not fit go through Truncate.
	if m.Len() > size {
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("writing a DNS answer failed", "error", err)
	}
}

// Run serves UDP (one SO_REUSEPORT socket per core) and TCP until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	socks := s.cfg.Sockets
	if socks == nil {
		var err error
		if socks, err = Listen(s.cfg.Addr); err != nil {
			return err
		}
	}
	pc, ln := socks.udp, socks.tcp
	addr := pc.LocalAddr().String()
	s.udpAddr.Store(pc.LocalAddr())
	s.tcpAddr.Store(ln.Addr())
	servers := []*mdns.Server{
		// No limit on queries per connection (miekg/dns closes one after
		// 128 by default, leaving queries a resolver pipelined on it
		// unanswered); connections are bounded in number, and idle ones
		// close after tcpIdleTimeout.
		{Listener: newLimitListener(ln, s.cfg.MaxTCPConns), Handler: s, ReadTimeout: tcpReadTimeout, WriteTimeout: tcpReadTimeout,
			IdleTimeout: func() time.Duration { return tcpIdleTimeout }, MaxTCPQueries: -1},
		{PacketConn: pc, Handler: s},
	}
	// More UDP sockets on the same port, up to one per core.
	for range max(0, runtime.NumCPU()-1) {
		servers = append(servers, &mdns.Server{Addr: addr, Net: "udp", ReusePort: true, Handler: s})
	}
	// Each UDP socket answers ordinary queries in its read loop.
	for _, srv := range servers[1:] {
		srv.DecorateReader = func(r mdns.Reader) mdns.Reader {
			return &fastReader{Reader: r, s: s, buf: make([]byte, 65535), out: make([]byte, 0, 4608)}
		}
	}
	errc := make(chan error, len(servers))
	started := make(chan struct{}, len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() {
			if srv.Listener != nil || srv.PacketConn != nil {
				errc <- srv.ActivateAndServe()
				return
			}
			errc <- srv.ListenAndServe()
		}()
	}
	for range servers {
		select {
		case <-started:
		case err := <-errc:
			shutdown(servers)
			return fmt.Errorf("dns server on %s: %w", addr, err)
		}
	}
	s.log.Info("dns server listening", "addr", addr, "domain", s.domain, "udpSockets", len(servers)-1)
	select {
	case <-ctx.Done():
		shutdown(servers)
		return nil
	case err := <-errc:
		shutdown(servers)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return fmt.Errorf("dns server on %s: %w", addr, err)
	}
}

// reusePort binds UDP sockets that further sockets may share (SO_REUSEPORT),
// so the kernel spreads queries over one socket per core.
var reusePort = net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}}

// Sockets are the UDP and TCP sockets of one DNS address.
type Sockets struct {
	udp net.PacketConn
	tcp net.Listener
}

// Close releases both sockets (Run closes them when it ends).
func (s *Sockets) Close() {
	s.udp.Close()
	s.tcp.Close()
}

// ListenError is a DNS address that could not be bound over Network
// ("udp" or "tcp").
type ListenError struct {
	Addr    string
	Network string
	Err     error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("dns address %s (%s): %v", e.Addr, e.Network, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Listen binds UDP and TCP on one port, the UDP socket one that further
// sockets may share (SO_REUSEPORT). With port 0 the free UDP port may be
// taken for TCP by another process; then it tries another port.
func Listen(addr string) (*Sockets, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		pc, err := reusePort.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return nil, &ListenError{Addr: addr, Network: "udp", Err: err}
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return &Sockets{udp: pc, tcp: ln}, nil
		}
		pc.Close()
		if port != "0" || attempt == 10 {
			return nil, &ListenError{Addr: addr, Network: "tcp", Err: err}
		}
	}
}

// Addr is the bound address, once Run listens.
func (s *Server) Addr() net.Addr {
	a, _ := s.tcpAddr.Load().(net.Addr)
	return a
}

func shutdown(servers []*mdns.Server) {
	for _, srv := range servers {
		srv.Shutdown()
	}
}
