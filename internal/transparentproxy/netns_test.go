package transparentproxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// topology is a pod's namespace ("app") joined by a veth pair to a
// namespace standing in for the rest of the network ("peer"), which holds
// the VIP and the Service IP itself so that a connection the rules do not
// redirect visibly arrives there instead.
type topology struct {
	app, peer string
	ipv6      bool
}

const (
	appIP   = "198.18.0.2"
	peerIP  = "198.18.0.1"
	vip     = "240.0.0.5"
	svcIP   = "10.96.0.10"
	appIP6  = "2001:db8::2"
	peerIP6 = "2001:db8::1"
	vip6    = "2001:db8:5::5"
)

func newTopology(t *testing.T) topology {
	t.Helper()
	top := topology{app: newNetns(t, "app"), peer: newNetns(t, "peer"), ipv6: ipv6Available()}
	run(t, "ip", "link", "add", "tp-app", "netns", top.app, "type", "veth", "peer", "name", "tp-peer", "netns", top.peer)
	run(t, "ip", "-n", top.app, "addr", "add", appIP+"/24", "dev", "tp-app")
	run(t, "ip", "-n", top.peer, "addr", "add", peerIP+"/24", "dev", "tp-peer")
	run(t, "ip", "-n", top.peer, "addr", "add", vip+"/32", "dev", "lo")
	run(t, "ip", "-n", top.peer, "addr", "add", svcIP+"/32", "dev", "lo")
	if top.ipv6 {
		run(t, "ip", "-n", top.app, "addr", "add", appIP6+"/64", "dev", "tp-app", "nodad")
		run(t, "ip", "-n", top.peer, "addr", "add", peerIP6+"/64", "dev", "tp-peer", "nodad")
		run(t, "ip", "-n", top.peer, "addr", "add", vip6+"/128", "dev", "lo")
	}
	run(t, "ip", "-n", top.app, "link", "set", "tp-app", "up")
	run(t, "ip", "-n", top.peer, "link", "set", "tp-peer", "up")
	run(t, "ip", "-n", top.app, "route", "add", "default", "via", peerIP)
	if top.ipv6 {
		run(t, "ip", "-n", top.app, "-6", "route", "add", "default", "via", peerIP6)
	}
	return top
}

func listen(t *testing.T, ns, network, addr, name string, arrivals chan<- arrival) {
	t.Helper()
	var l net.Listener
	var err error
	inNetns(t, ns, func() { l, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	serve(t, name, l, arrivals)
}

// serveDNS answers every A query with the VIP, over UDP and TCP on addr in
// ns: the stand-in for the sidecar's DNS.
func serveDNS(t *testing.T, ns, addr string) {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   net.ParseIP(vip),
		})
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	var err error
	inNetns(t, ns, func() {
		if pc, err = net.ListenPacket("udp4", addr); err == nil {
			l, err = net.Listen("tcp4", addr)
		}
	})
	if err != nil {
		t.Fatalf("DNS stand-in on %s: %v", addr, err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: l, Handler: handler}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })
}

// lookup asks server for backend.mesh from inside ns.
func lookup(t *testing.T, ns, network, server string) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("backend.mesh.", dns.TypeA)
	var r *dns.Msg
	var err error
	inNetns(t, ns, func() { r, _, err = c.Exchange(q, server) })
	if err != nil {
		t.Fatalf("DNS over %s to %s: %v", network, server, err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != vip {
		t.Fatalf("DNS over %s to %s answered %v, want backend.mesh A %s from the DNS port", network, server, r.Answer, vip)
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// TestTransparentProxyInNetns installs the rules with the real iptables
// in namespaces the test creates, for each backend. A listener on the
// outbound port stands in for Envoy (it reads SO_ORIGINAL_DST to prove the
// original destination survives), a DNS server on the DNS port for the
// sidecar's DNS, and a listener on 15006 for Envoy's inbound listener.
func TestTransparentProxyInNetns(t *testing.T) {
	requireNetnsTools(t)
	for _, backend := range []Backend{BackendNFT, BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) { testInNetns(t, backend) })
	}
}

func testInNetns(t *testing.T, backend Backend) {
	top := newTopology(t)
	if !top.ipv6 {
		t.Log("the kernel has no IPv6: checking the IPv4 rules only")
	}
	// Rules someone else put there, which must survive install/uninstall,
	// written with the backend under test so that auto-detection picks it.
	bin := "iptables-" + string(backend)
	run(t, "ip", "netns", "exec", top.app, bin, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "203.0.113.9", "--dport", "9", "-j", "RETURN")
	run(t, "ip", "netns", "exec", top.app, bin, "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
	if top.ipv6 {
		run(t, "ip", "netns", "exec", top.app, "ip6tables-"+string(backend), "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "2001:db8:9::9", "-j", "RETURN")
	}
	before := saveAll(t, top.app, backend, top.ipv6)

	arrivals := make(chan arrival, 16)
	listen(t, top.app, "tcp4", "0.0.0.0:15001", "outbound", arrivals)
	listen(t, top.app, "tcp4", "0.0.0.0:15006", "inbound", arrivals)
	listen(t, top.app, "tcp4", "0.0.0.0:8080", "app", arrivals)
	listen(t, top.app, "tcp4", "0.0.0.0:9901", "admin", arrivals)
	listen(t, top.peer, "tcp4", "0.0.0.0:80", "peer", arrivals)
	serveDNS(t, top.app, "0.0.0.0:15053")
	if top.ipv6 {
		listen(t, top.app, "tcp6", "[::]:15001", "outbound6", arrivals)
		listen(t, top.app, "tcp6", "[::1]:8080", "app6", arrivals)
		listen(t, top.peer, "tcp6", "[::]:80", "peer6", arrivals)
	}

	a := &Applier{Runner: ExecRunner{Prefix: []string{"ip", "netns", "exec", top.app}}, Backend: BackendAuto}
	ctx := context.Background()
	install := func(cfg Config) {
		t.Helper()
		plan, err := a.Install(ctx, cfg, false)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Backend != backend {
			t.Fatalf("detected backend %q in a namespace whose rules were written with %s", plan.Backend, backend)
		}
	}

	// Before anything is installed, the VIP is reached on the peer.
	dialFrom(t, top.app, vip+":80", "plain")
	expectArrival(t, arrivals, "peer", "plain", netip.AddrPort{})

	// A gateway: outbound and DNS redirected, inbound not.
	gateway := Default()
	gateway.RedirectInbound = false
	gateway.IPv6 = top.ipv6
	install(gateway)
	t.Run("gateway outbound to a VIP lands on the outbound port", func(t *testing.T) {
		dialFrom(t, top.app, vip+":80", "to vip")
		expectArrival(t, arrivals, "outbound", "to vip", ap(vip+":80"))
		dialFrom(t, top.app, svcIP+":80", "to service")
		expectArrival(t, arrivals, "outbound", "to service", ap(svcIP+":80"))
	})
	t.Run("gateway inbound reaches the app directly", func(t *testing.T) {
		dialFrom(t, top.peer, appIP+":8080", "into gateway")
		expectArrival(t, arrivals, "app", "into gateway", netip.AddrPort{})
	})
	t.Run("dns to port 53 lands on the DNS port", func(t *testing.T) {
		lookup(t, top.app, "udp", svcIP+":53")
		lookup(t, top.app, "tcp", svcIP+":53")
	})
	t.Run("the proxy uid is not redirected", func(t *testing.T) {
		dialAsUID(t, top.app, vip+":80", DefaultProxyUID)
		expectArrival(t, arrivals, "peer", "uid 5678", netip.AddrPort{})
	})
	t.Run("loopback is not redirected", func(t *testing.T) {
		dialFrom(t, top.app, "127.0.0.1:8080", "loopback")
		expectArrival(t, arrivals, "app", "loopback", netip.AddrPort{})
		if top.ipv6 {
			dialFrom(t, top.app, "[::1]:8080", "loopback6")
			expectArrival(t, arrivals, "app6", "loopback6", netip.AddrPort{})
		}
	})
	if top.ipv6 {
		t.Run("ipv6 outbound lands on the outbound port", func(t *testing.T) {
			dialFrom(t, top.app, "["+vip6+"]:80", "to vip6")
			expectArrival(t, arrivals, "outbound6", "to vip6", ap("["+vip6+"]:80"))
		})
	}

	// A workload, installed over the gateway's rules: inbound redirected
	// too, the admin port excluded, an outbound CIDR excluded.
	workload := Default()
	workload.IPv6 = top.ipv6
	workload.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix(svcIP + "/32")}
	install(workload)
	installed := saveAll(t, top.app, backend, top.ipv6)
	t.Run("workload inbound lands on the inbound port", func(t *testing.T) {
		dialFrom(t, top.peer, appIP+":8080", "into workload")
		expectArrival(t, arrivals, "inbound", "into workload", ap(appIP+":8080"))
		dialFrom(t, top.peer, appIP+":9901", "admin")
		expectArrival(t, arrivals, "admin", "admin", netip.AddrPort{})
	})
	t.Run("excluded cidr is not redirected but dns to it is", func(t *testing.T) {
		dialFrom(t, top.app, svcIP+":80", "excluded")
		expectArrival(t, arrivals, "peer", "excluded", netip.AddrPort{})
		lookup(t, top.app, "udp", svcIP+":53")
		dialFrom(t, top.app, vip+":80", "still redirected")
		expectArrival(t, arrivals, "outbound", "still redirected", ap(vip+":80"))
	})
	if !strings.Contains(installed, "ATOLL_IN_REDIRECT") || strings.Count(installed, "-A OUTPUT -j ATOLL_OUTPUT") != 1+boolInt(top.ipv6) {
		t.Fatalf("the workload's rules did not replace the gateway's:\n%s", installed)
	}

	install(workload)
	if again := saveAll(t, top.app, backend, top.ipv6); again != installed {
		t.Fatalf("installing twice changed the rules:\n--- first\n%s--- second\n%s", installed, again)
	}

	if _, err := a.Uninstall(ctx, top.ipv6, false); err != nil {
		t.Fatal(err)
	}
	if after := saveAll(t, top.app, backend, top.ipv6); after != before {
		t.Fatalf("uninstall did not restore the rules:\n--- before install\n%s--- after uninstall\n%s", before, after)
	}
	plan, err := a.Uninstall(ctx, top.ipv6, false)
	if err != nil || plan.V4 != "" || plan.V6 != "" {
		t.Fatalf("uninstalling again: plan %+v, %v; want nothing to do", plan, err)
	}
	dialFrom(t, top.app, vip+":80", "after uninstall")
	expectArrival(t, arrivals, "peer", "after uninstall", netip.AddrPort{})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
