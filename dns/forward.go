package dns

import (
	"net"
	"net/netip"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Forwarding is for the server's own clients only: a query outside the
// domain is relayed to the upstream when its client is in an allowed
// network, and answered REFUSED otherwise, so the server is never an open
// resolver others can use for amplification. At most MaxInFlight queries
// are relayed at once, each holding one goroutine and one socket until the
// upstream answers or UpstreamTimeout passes; a query beyond the bound is
// answered SERVFAIL at once.

// Defaults of the bounds.
const (
	DefaultMaxInFlight = 256
	DefaultMaxTCPConns = 256
)

// DefaultUpstreamAllow is loopback and the private and link-local ranges:
// the clients a zone's DNS server forwards for unless configured.
var DefaultUpstreamAllow = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"100.64.0.0/10",
	"fc00::/7", "fe80::/10",
}

// forwarder relays queries outside the domain to the upstream.
type forwarder struct {
	upstream string
	allow    []netip.Prefix
	slots    chan struct{} // one per query in flight
	udp, tcp *mdns.Client
	refused  map[string]prometheus.Counter // by reason: not-allowed, busy
}

func newForwarder(cfg Config) *forwarder {
	f := &forwarder{
		upstream: cfg.Upstream,
		allow:    cfg.UpstreamAllow,
		slots:    make(chan struct{}, cfg.MaxInFlight),
		udp:      &mdns.Client{Net: "udp", Timeout: cfg.UpstreamTimeout},
		tcp:      &mdns.Client{Net: "tcp", Timeout: cfg.UpstreamTimeout},
	}
	return f
}

func (f *forwarder) metrics(reg prometheus.Registerer) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_dns_forward_refused_total",
		Help: "Queries outside the domain not forwarded: not-allowed (the client is outside dns.upstreamAllow: REFUSED), busy (dns.maxInFlight queries already forwarded: SERVFAIL).",
	}, []string{"reason"})
	f.refused = map[string]prometheus.Counter{
		"not-allowed": refused.WithLabelValues("not-allowed"),
		"busy":        refused.WithLabelValues("busy"),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atoll_dns_forward_in_flight",
		Help: "Queries forwarded to the upstream and not answered yet.",
	}, func() float64 { return float64(len(f.slots)) })
	if reg != nil {
		reg.MustRegister(refused, inFlight)
	}
}

// allowed reports whether the client at addr may have queries forwarded.
func (f *forwarder) allowed(addr net.Addr) bool {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		return false
	}
	ip = ip.Unmap()
	for _, p := range f.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// forward relays r and returns the upstream's answer, or the rcode to
// answer with when it is not forwarded or the upstream fails.
func (f *forwarder) forward(w mdns.ResponseWriter, r *mdns.Msg) (*mdns.Msg, int) {
	if f.upstream == "" {
		return nil, mdns.RcodeRefused
	}
	if !f.allowed(w.RemoteAddr()) {
		f.refused["not-allowed"].Inc()
		return nil, mdns.RcodeRefused
	}
	select {
	case f.slots <- struct{}{}:
	default:
		f.refused["busy"].Inc()
		return nil, mdns.RcodeServerFailure
	}
	defer func() { <-f.slots }()
	c := f.udp
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		c = f.tcp
	}
	resp, _, err := c.Exchange(r, f.upstream)
	if err != nil {
		return nil, mdns.RcodeServerFailure
	}
	return resp, resp.Rcode
}

// limitListener accepts at most n connections at a time; Accept waits for
// one to close (new clients wait in the kernel's backlog).
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// tcpTimeouts bound how long one TCP client holds a connection slot.
const (
	tcpReadTimeout = 5 * time.Second
	tcpIdleTimeout = 10 * time.Second
)
