package kds

import (
	"net"
	"sync"
)

// LimitPerPeer returns a listener that accepts at most perPeer connections
// open at once from one IP address; further connections from that address
// are closed as soon as they are accepted, so one host cannot take every
// connection the server can hold. perPeer <= 0 means no limit. Behind a
// proxy or NAT every zone may share one address: raise the limit there.
func LimitPerPeer(l net.Listener, perPeer int) net.Listener {
	if perPeer <= 0 {
		return l
	}
	return &peerLimiter{Listener: l, perPeer: perPeer, open: map[string]int{}}
}

type peerLimiter struct {
	net.Listener
	perPeer int
	mu      sync.Mutex
	open    map[string]int // by IP address; entries at zero are deleted
}

func (l *peerLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open[ip] < l.perPeer
		if ok {
			l.open[ip]++
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *peerLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

func peerIP(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// countedConn gives its slot back once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
