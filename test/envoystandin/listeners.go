package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"unsafe"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// The listeners the stand-in is given, as Envoy would hold them. Those
// with use_original_dst (the zone's virtual outbound listener) are bound,
// as Envoy binds them; a connection accepted there is handed, as Envoy
// hands it, to the listener whose address is the connection's original
// destination (read with SO_ORIGINAL_DST, which the transparent proxy's
// REDIRECT leaves), else kept by the listener itself. The stand-in does
// not forward anything: it prints
//
//	{"event":"accepted","listener":"outbound","original_dst":"240.0.0.1:9001","handed_to":"outbound:240.0.0.1:9001","to_cluster":"backend"}
//
// (to_cluster: the cluster of the tcp_proxy filter of that listener's
// first filter chain, where Envoy would send it) and closes the
// connection.

// listenerInfo is what the stand-in keeps of a Listener.
type listenerInfo struct {
	addr      netip.AddrPort // invalid when it has none (an API listener)
	bind      bool           // bind_to_port (default true)
	originDst bool           // use_original_dst
	cluster   string         // the first filter chain's tcp_proxy cluster
}

// listeners holds the current Listeners and the sockets bound for them.
type listeners struct {
	mu    sync.Mutex
	held  map[string]listenerInfo
	bound map[string]net.Listener
}

func newListeners() *listeners {
	return &listeners{held: map[string]listenerInfo{}, bound: map[string]net.Listener{}}
}

// static takes the bootstrap's static listeners, as Envoy does at start.
func (ls *listeners) static(static []*listenerv3.Listener) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range static {
		ls.held[l.GetName()] = describe(l)
	}
	ls.bind()
}

// apply takes a delta LDS response: keeps its listeners, forgets the
// removed ones, and binds the use_original_dst listeners not bound yet.
func (ls *listeners) apply(resp *discoveryv3.DeltaDiscoveryResponse) {
	if resp.GetTypeUrl() != resourcev3.ListenerType {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, r := range resp.GetResources() {
		var l listenerv3.Listener
		if err := proto.Unmarshal(r.GetResource().GetValue(), &l); err != nil {
			emit(line{Event: "bad_listener", Error: fmt.Sprintf("%s: %v", r.GetName(), err)})
			continue
		}
		ls.held[r.GetName()] = describe(&l)
	}
	for _, name := range resp.GetRemovedResources() {
		delete(ls.held, name)
		if b, ok := ls.bound[name]; ok {
			b.Close()
			delete(ls.bound, name)
		}
	}
	ls.bind()
}

// bind binds the use_original_dst listeners not bound yet. Callers hold mu.
func (ls *listeners) bind() {
	for name, info := range ls.held {
		if !info.originDst || !info.bind || !info.addr.IsValid() || ls.bound[name] != nil {
			continue
		}
		// Envoy's listeners are of one family each (IPV6_V6ONLY on [::]),
		// so the IPv4 and IPv6 outbound listeners share their port.
		network := "tcp4"
		if info.addr.Addr().Is6() {
			network = "tcp6"
		}
		ln, err := net.Listen(network, info.addr.String())
		if err != nil {
			emit(line{Event: "bind_error", Listener: name, Error: err.Error()})
			continue
		}
		ls.bound[name] = ln
		emit(line{Event: "bound", Listener: name, Address: ln.Addr().String()})
		go ls.accept(name, ln)
	}
}

func describe(l *listenerv3.Listener) listenerInfo {
	info := listenerInfo{bind: l.GetBindToPort() == nil || l.GetBindToPort().GetValue(), originDst: l.GetUseOriginalDst().GetValue()}
	if sa := l.GetAddress().GetSocketAddress(); sa != nil {
		if a, err := netip.ParseAddr(sa.GetAddress()); err == nil {
			info.addr = netip.AddrPortFrom(a, uint16(sa.GetPortValue()))
		}
	}
	if chains := l.GetFilterChains(); len(chains) > 0 {
		for _, f := range chains[0].GetFilters() {
			var tp tcpproxyv3.TcpProxy
			if f.GetTypedConfig() != nil && f.GetTypedConfig().UnmarshalTo(&tp) == nil {
				info.cluster = tp.GetCluster()
			}
		}
	}
	return info
}

func (ls *listeners) accept(name string, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed
		}
		dst, err := originalDst(conn)
		out := line{Event: "accepted", Listener: name}
		if err != nil {
			out.Error = err.Error()
		} else {
			out.OriginalDst = dst.String()
			out.HandedTo, out.ToCluster = ls.handTo(name, dst)
		}
		emit(out)
		conn.Close()
	}
}

// handTo is the listener a connection to dst, accepted by listener from,
// goes to, and that listener's cluster.
func (ls *listeners) handTo(from string, dst netip.AddrPort) (string, string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for name, info := range ls.held {
		if info.addr == dst && name != from {
			return name, info.cluster
		}
	}
	return from, ls.held[from].cluster
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h).
const ip6tSOOriginalDst = 80

// originalDst reads the destination a REDIRECTed connection was sent to:
// SO_ORIGINAL_DST (a sockaddr_in) for IPv4, IP6T_SO_ORIGINAL_DST (a
// sockaddr_in6) for IPv6.
func originalDst(conn net.Conn) (netip.AddrPort, error) {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	var out netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if local.Addr().Is4() || local.Addr().Is4In6() {
			// struct sockaddr_in: family (2), port (2, network order), addr (4).
			mreq, gerr := unix.GetsockoptIPv6Mreq(int(fd), syscall.SOL_IP, unix.SO_ORIGINAL_DST)
			if gerr != nil {
				serr = fmt.Errorf("SO_ORIGINAL_DST: %w", gerr)
				return
			}
			b := mreq.Multiaddr
			out = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), binary.BigEndian.Uint16(b[2:4]))
			return
		}
		// struct sockaddr_in6: family (2), port (2), flowinfo (4), addr (16),
		// scope id (4): 28 bytes, the size of IPv6MTUInfo.
		info, gerr := unix.GetsockoptIPv6MTUInfo(int(fd), syscall.SOL_IPV6, ip6tSOOriginalDst)
		if gerr != nil {
			serr = fmt.Errorf("IP6T_SO_ORIGINAL_DST: %w", gerr)
			return
		}
		a := info.Addr
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])
		out = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), port)
	})
	if err != nil {
		return out, err
	}
	return out, serr
}
