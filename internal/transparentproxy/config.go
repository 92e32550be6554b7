// Package transparentproxy builds and applies the iptables rules that steer
// a pod's traffic through its Envoy sidecar: outbound TCP to Envoy's
// outbound port, DNS (UDP and TCP port 53) to the sidecar's DNS port, and
// optionally inbound TCP to Envoy's inbound port. Traffic from Envoy's own
// UID and to loopback is left alone, and so are the ports and networks the
// user excludes.
//
// The rules live in atoll's own chains of the nat table (ATOLL_OUTPUT,
// ATOLL_REDIRECT, ATOLL_DNS, ATOLL_INBOUND, ATOLL_IN_REDIRECT), jumped to
// from OUTPUT and PREROUTING, so Uninstall removes exactly what Install
// added. Rules is pure; Install and Uninstall apply it with one
// iptables-restore call per IP family, so each family changes atomically.
//
//	cfg := transparentproxy.Default()
//	cfg.RedirectInbound = false // a gateway
//	v4, v6 := transparentproxy.Rules(cfg)
package transparentproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Flag names of "atoll transparent-proxy install", shared with the
// injector that writes the init container's command line.
const (
	FlagProxyUID             = "proxy-uid"
	FlagOutboundPort         = "outbound-port"
	FlagInboundPort          = "inbound-port"
	FlagDNSPort              = "dns-port"
	FlagRedirectInbound      = "redirect-inbound"
	FlagRedirectDNS          = "redirect-dns"
	FlagExcludeInboundPorts  = "exclude-inbound-ports"
	FlagExcludeOutboundPorts = "exclude-outbound-ports"
	FlagExcludeOutboundCIDRs = "exclude-outbound-cidrs"
	FlagIPv6                 = "ipv6"
	FlagDryRun               = "dry-run"
	FlagBackend              = "iptables-backend"
)

// Defaults of the injected pod (the sidecar contract).
const (
	DefaultProxyUID     = 5678
	DefaultOutboundPort = 15001
	DefaultInboundPort  = 15006
	DefaultDNSPort      = 15053
	DefaultAdminPort    = 9901
)

// Config says what to redirect where.
type Config struct {
	// ProxyUID is the UID Envoy (and the sidecar's DNS) runs as; its
	// traffic is never redirected, or it would loop.
	ProxyUID int
	// OutboundPort receives outbound TCP (Envoy's original-dst listener).
	OutboundPort int
	// InboundPort receives inbound TCP when RedirectInbound is set.
	InboundPort int
	// DNSPort receives DNS queries (UDP and TCP to port 53) when RedirectDNS
	// is set.
	DNSPort         int
	RedirectInbound bool
	RedirectDNS     bool
	// ExcludeInboundPorts are destination ports of inbound TCP left alone.
	ExcludeInboundPorts []int
	// ExcludeOutboundPorts are destination ports of outbound TCP left alone.
	ExcludeOutboundPorts []int
	// ExcludeOutboundCIDRs are destinations of outbound TCP left alone,
	// IPv4 and IPv6 prefixes mixed; each goes into the rules of its family.
	ExcludeOutboundCIDRs []netip.Prefix
	// IPv6 also installs the rules for IPv6 (ip6tables).
	IPv6 bool
}

// Default is a workload's configuration: inbound and DNS redirected,
// Envoy's admin port excluded from inbound redirection, IPv4 only.
func Default() Config {
	return Config{
		ProxyUID:            DefaultProxyUID,
		OutboundPort:        DefaultOutboundPort,
		InboundPort:         DefaultInboundPort,
		DNSPort:             DefaultDNSPort,
		RedirectInbound:     true,
		RedirectDNS:         true,
		ExcludeInboundPorts: []int{DefaultAdminPort},
	}
}

// Validate reports the first setting that cannot work, naming its flag.
func (c Config) Validate() error {
	if c.ProxyUID < 0 || c.ProxyUID > 1<<32-2 {
		return fmt.Errorf("--%s %d is invalid: use the UID Envoy runs as (0-4294967294)", FlagProxyUID, c.ProxyUID)
	}
	if c.ProxyUID == 0 {
		return fmt.Errorf("--%s 0 is root: run Envoy as its own UID, or every process running as root bypasses the proxy", FlagProxyUID)
	}
	ports := []struct {
		flag string
		port int
		used bool
	}{
		{FlagOutboundPort, c.OutboundPort, true},
		{FlagInboundPort, c.InboundPort, c.RedirectInbound},
		{FlagDNSPort, c.DNSPort, c.RedirectDNS},
	}
	for _, p := range ports {
		if p.used && !validPort(p.port) {
			return fmt.Errorf("--%s %d is invalid: use a port in 1-65535", p.flag, p.port)
		}
	}
	if c.RedirectInbound && c.InboundPort == c.OutboundPort {
		return fmt.Errorf("--%s and --%s are both %d: Envoy needs distinct inbound and outbound listeners", FlagInboundPort, FlagOutboundPort, c.InboundPort)
	}
	for _, list := range []struct {
		flag  string
		ports []int
	}{{FlagExcludeInboundPorts, c.ExcludeInboundPorts}, {FlagExcludeOutboundPorts, c.ExcludeOutboundPorts}} {
		for _, p := range list.ports {
			if !validPort(p) {
				return fmt.Errorf("--%s: port %d is invalid: use ports in 1-65535", list.flag, p)
			}
		}
	}
	if c.RedirectInbound && slices.Contains(c.ExcludeInboundPorts, c.InboundPort) {
		return fmt.Errorf("--%s lists the inbound port %d itself: leave it out", FlagExcludeInboundPorts, c.InboundPort)
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("--%s: a prefix is invalid: use CIDRs such as 10.0.0.0/8 or fd00::/8", FlagExcludeOutboundCIDRs)
		}
		if p != p.Masked() {
			return fmt.Errorf("--%s: %s has host bits set: use %s", FlagExcludeOutboundCIDRs, p, p.Masked())
		}
		if p.Addr().Is4In6() {
			return fmt.Errorf("--%s: %s is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", FlagExcludeOutboundCIDRs, p)
		}
	}
	return nil
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

// InstallArgs is the command line, after the binary's name, that installs
// c: "transparent-proxy install" and every setting as a flag, for the
// injected init container. Lists are written even when empty, so the
// command's defaults never stand in for a setting.
func (c Config) InstallArgs() []string {
	args := []string{"transparent-proxy", "install",
		fmt.Sprintf("--%s=%d", FlagProxyUID, c.ProxyUID),
		fmt.Sprintf("--%s=%d", FlagOutboundPort, c.OutboundPort),
		fmt.Sprintf("--%s=%d", FlagInboundPort, c.InboundPort),
		fmt.Sprintf("--%s=%d", FlagDNSPort, c.DNSPort),
		fmt.Sprintf("--%s=%t", FlagRedirectInbound, c.RedirectInbound),
		fmt.Sprintf("--%s=%t", FlagRedirectDNS, c.RedirectDNS),
		fmt.Sprintf("--%s=%s", FlagExcludeInboundPorts, joinInts(c.ExcludeInboundPorts)),
		fmt.Sprintf("--%s=%s", FlagExcludeOutboundPorts, joinInts(c.ExcludeOutboundPorts)),
	}
	cidrs := make([]string, len(c.ExcludeOutboundCIDRs))
	for i, p := range c.ExcludeOutboundCIDRs {
		cidrs[i] = p.String()
	}
	args = append(args, fmt.Sprintf("--%s=%s", FlagExcludeOutboundCIDRs, strings.Join(cidrs, ",")))
	if c.IPv6 {
		args = append(args, "--"+FlagIPv6)
	}
	return args
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// ParsePorts reads a port list flag (flag names it in errors).
func ParsePorts(flag string, values []string) ([]int, error) {
	var ports []int
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		p, err := strconv.Atoi(v)
		if err != nil || !validPort(p) {
			return nil, fmt.Errorf("--%s: %q is not a port: use numbers in 1-65535, comma-separated", flag, v)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
