package transparentproxy

import (
	"fmt"
	"slices"
	"strings"
)

// Atoll's chains in the nat table. Every chain whose name starts with
// ChainPrefix belongs to atoll and is removed by Uninstall.
const (
	ChainPrefix = "ATOLL_"
	// ChainOutput holds the outbound decisions, jumped to from OUTPUT.
	ChainOutput = "ATOLL_OUTPUT"
	// ChainRedirect sends outbound TCP to Envoy's outbound port.
	ChainRedirect = "ATOLL_REDIRECT"
	// ChainDNS sends DNS queries to the sidecar's DNS port.
	ChainDNS = "ATOLL_DNS"
	// ChainInbound holds the inbound decisions, jumped to from PREROUTING.
	ChainInbound = "ATOLL_INBOUND"
	// ChainInRedirect sends inbound TCP to Envoy's inbound port.
	ChainInRedirect = "ATOLL_IN_REDIRECT"
)

// Rules returns the nat table rules in iptables-restore format, for
// iptables and, when cfg.IPv6 is set, for ip6tables (v6 is empty
// otherwise). They are meant for "iptables-restore --noflush": they declare
// atoll's chains and append the jumps to them from OUTPUT and PREROUTING,
// touching no other rule. cfg must be valid.
//
// Outbound, in order: traffic of the proxy UID returns (no loop); DNS to
// port 53, UDP and TCP, goes to the DNS port (whatever the destination, so
// a resolver on loopback or in an excluded CIDR is answered by the sidecar
// too); traffic to loopback or leaving through lo (the pod's own addresses)
// returns; excluded ports and CIDRs return; every other TCP connection goes
// to the outbound port. Inbound TCP, unless its port is excluded, goes to
// the inbound port.
func Rules(cfg Config) (v4, v6 string) {
	v4 = rules(cfg, false)
	if cfg.IPv6 {
		v6 = rules(cfg, true)
	}
	return v4, v6
}

func rules(cfg Config, v6 bool) string {
	var b strings.Builder
	line := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	line("*nat")
	for _, c := range chains(cfg) {
		line(":%s - [0:0]", c)
	}

	line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, cfg.OutboundPort)
	if cfg.RedirectDNS {
		line("-A %s -p udp -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
		line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainDNS, cfg.DNSPort)
	}
	line("-A %s -m owner --uid-owner %d -j RETURN", ChainOutput, cfg.ProxyUID)
	if cfg.RedirectDNS {
		line("-A %s -p udp -m udp --dport 53 -j %s", ChainOutput, ChainDNS)
		line("-A %s -p tcp -m tcp --dport 53 -j %s", ChainOutput, ChainDNS)
	}
	loopback := "127.0.0.0/8"
	if v6 {
		loopback = "::1/128"
	}
	line("-A %s -d %s -j RETURN", ChainOutput, loopback)
	line("-A %s -o lo -j RETURN", ChainOutput)
	for _, p := range sortedPorts(cfg.ExcludeOutboundPorts) {
		line("-A %s -p tcp -m tcp --dport %d -j RETURN", ChainOutput, p)
	}
	for _, p := range cfg.ExcludeOutboundCIDRs {
		if p.Addr().Is6() == v6 {
			line("-A %s -d %s -j RETURN", ChainOutput, p.Masked())
		}
	}
	line("-A %s -p tcp -j %s", ChainOutput, ChainRedirect)

	if cfg.RedirectInbound {
		line("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInRedirect, cfg.InboundPort)
		for _, p := range sortedPorts(cfg.ExcludeInboundPorts) {
			line("-A %s -p tcp -m tcp --dport %d -j RETURN", ChainInbound, p)
		}
		line("-A %s -p tcp -j %s", ChainInbound, ChainInRedirect)
		line("-A PREROUTING -p tcp -j %s", ChainInbound)
	}
	line("-A OUTPUT -j %s", ChainOutput)
	line("COMMIT")
	return b.String()
}

// chains are atoll's chains that cfg uses, in the order they are declared.
func chains(cfg Config) []string {
	c := []string{ChainOutput, ChainRedirect}
	if cfg.RedirectDNS {
		c = append(c, ChainDNS)
	}
	if cfg.RedirectInbound {
		c = append(c, ChainInbound, ChainInRedirect)
	}
	return c
}

func sortedPorts(ports []int) []int {
	s := slices.Clone(ports)
	slices.Sort(s)
	return slices.Compact(s)
}
