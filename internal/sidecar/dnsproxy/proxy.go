package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// TCP connection limits of the proxy's own server: a client that connects
// and sends nothing is dropped after tcpReadTimeout, an idle one after
// tcpIdleTimeout.
const (
	tcpReadTimeout = 2 * time.Second
	tcpIdleTimeout = 8 * time.Second
)

// Proxy relays a pod's DNS queries: the mesh domain to the zone, the rest to
// the cluster DNS.
type Proxy struct {
	cfg    Config
	domain string // lowercase, fully qualified
	log    *slog.Logger
	pc     net.PacketConn
	ln     net.Listener
	slots  chan struct{} // one per relayed query in flight
	udp    *dns.Client
	tcp    *dns.Client
	ctx    context.Context // Run's context: relayed queries end with it
}

// New validates cfg and binds its UDP and TCP sockets (both on one port,
// also when cfg.Listen asks for port 0); Run serves them and releases them.
func New(cfg Config, log *slog.Logger) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, ln, err := listen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	return &Proxy{
		cfg:    cfg,
		domain: strings.ToLower(dns.Fqdn(cfg.Domain)),
		log:    log.With("component", "dns-proxy"),
		pc:     pc,
		ln:     ln,
		slots:  make(chan struct{}, cfg.MaxInFlight),
		udp:    &dns.Client{Net: "udp", Timeout: cfg.Timeout},
		tcp:    &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		ctx:    context.Background(),
	}, nil
}

// listen binds UDP and TCP on addr. For port 0 the TCP socket takes the
// port the kernel gave the UDP one, trying again with a new port if that is
// taken for TCP.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr) // validated
	const attempts = 10
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns proxy listening on udp %s: %w", addr, err)
		}
		tcpAddr := addr
		if port == "0" {
			tcpAddr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		ln, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || i == attempts-1 {
			return nil, nil, fmt.Errorf("dns proxy listening on tcp %s: %w", tcpAddr, err)
		}
	}
}

// Addr is the address the proxy serves on (UDP and TCP).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Run serves UDP and TCP until ctx ends, then closes the sockets.
func (p *Proxy) Run(ctx context.Context) error {
	p.ctx = ctx
	servers := []*dns.Server{
		{PacketConn: p.pc, Handler: p},
		{Listener: p.ln, Handler: p, ReadTimeout: tcpReadTimeout, WriteTimeout: tcpReadTimeout,
			IdleTimeout: func() time.Duration { return tcpIdleTimeout }},
	}
	p.log.Info("dns proxy serving", "address", p.Addr(), "domain", p.domain, "mesh", p.cfg.Mesh, "upstream", p.cfg.Upstream)
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		// Shutdown before the server has started is a no-op that leaves
		// it serving: stop it once it has started, or not at all if it
		// failed to.
		started, exited := make(chan struct{}), make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		g.Go(func() error {
			defer close(exited)
			if err := s.ActivateAndServe(); err != nil && gctx.Err() == nil {
				return fmt.Errorf("dns proxy serving %s: %w", p.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			select {
			case <-started:
			case <-exited:
				return nil
			}
			sctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
			defer cancel()
			if err := s.ShutdownContext(sctx); err != nil {
				return fmt.Errorf("dns proxy stopping: %w", err)
			}
			return nil
		})
	}
	err := g.Wait()
	p.pc.Close()
	p.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ServeDNS relays one query and writes the answer, or SERVFAIL.
func (p *Proxy) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	_, overTCP := w.RemoteAddr().(*net.TCPAddr)
	resp := p.relay(r, p.route(r.Question[0].Name), overTCP)
	if resp == nil {
		resp = new(dns.Msg)
		resp.SetRcode(r, dns.RcodeServerFailure)
	}
	resp.Id = r.Id
	if !overTCP {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size) // sets TC when records had to go: the client asks again over TCP
	}
	// A client gone before its answer is its own concern.
	_ = w.WriteMsg(resp)
}

// route returns the upstream for name: Mesh for the domain and its
// subdomains, whatever their case, Upstream otherwise.
func (p *Proxy) route(name string) string {
	n := strings.ToLower(dns.Fqdn(name))
	if n == p.domain || strings.HasSuffix(n, "."+p.domain) {
		return p.cfg.Mesh
	}
	return p.cfg.Upstream
}

// relay sends r to upstream over the client's transport, retrying a
// truncated UDP answer over TCP; nil when the upstream failed or too many
// queries are in flight.
func (p *Proxy) relay(r *dns.Msg, upstream string, overTCP bool) *dns.Msg {
	select {
	case p.slots <- struct{}{}:
	default:
		return nil
	}
	defer func() { <-p.slots }()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	defer cancel()
	c := p.udp
	if overTCP {
		c = p.tcp
	}
	resp, _, err := c.ExchangeContext(ctx, r, upstream)
	if err == nil && resp.Truncated && !overTCP {
		resp, _, err = p.tcp.ExchangeContext(ctx, r, upstream)
	}
	if err != nil {
		return nil
	}
	return resp
}
