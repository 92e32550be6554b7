package clusterdns

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// Defaults of Config.
const (
	DefaultClusterDomain  = "cluster.local"
	DefaultNamespace      = "kube-system"
	DefaultServiceAccount = "coredns"
)

// cacheSeconds caps how long CoreDNS keeps an answer; records with a
// shorter TTL (the zone's DNS answers with 5 s) are kept for their TTL.
const cacheSeconds = 5

// Config says what the cluster's DNS serves.
type Config struct {
	// Kube is the API server whose Services the kubernetes plugin
	// answers for. Required.
	Kube *kubeenv.Env
	// ClusterDomain is the domain of Services and Pods; default
	// cluster.local.
	ClusterDomain string
	// Namespace and ServiceAccount name the identity CoreDNS reads the
	// API server with; default kube-system/coredns. Start creates both.
	Namespace      string
	ServiceAccount string
	// Upstream is where names in no other zone go ("ip:port", as
	// /etc/resolv.conf would give it to a cluster's CoreDNS). Empty: no
	// `forward .`, so CoreDNS answers such names with SERVFAIL.
	Upstream string
	// StubDomains sends each domain to a DNS server ("ip:port"), one
	// StubDomainStanza each: "mesh" → the zone's DNS.
	StubDomains map[string]string
	// Addr is where CoreDNS listens, UDP and TCP ("ip:port"); default
	// 127.0.0.1 on a port free for both.
	Addr string
}

// withDefaults returns c with every empty optional field set.
func (c Config) withDefaults() Config {
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.ServiceAccount == "" {
		c.ServiceAccount = DefaultServiceAccount
	}
	return c
}

// Validate checks c after defaults, naming the field that is wrong.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Kube == nil {
		return fmt.Errorf("clusterdns: Config.Kube is nil: give the API server from kubeenv.Start")
	}
	if err := checkDomain(c.ClusterDomain); err != nil {
		return fmt.Errorf("clusterdns: ClusterDomain: %w", err)
	}
	if c.Upstream != "" {
		if err := checkAddr(c.Upstream); err != nil {
			return fmt.Errorf("clusterdns: Upstream: %w", err)
		}
	}
	if c.Addr != "" {
		if err := checkAddr(c.Addr); err != nil {
			return fmt.Errorf("clusterdns: Addr: %w", err)
		}
	}
	cluster := canonical(c.ClusterDomain)
	seen := map[string]string{}
	for _, domain := range slices.Sorted(maps.Keys(c.StubDomains)) {
		if err := checkDomain(domain); err != nil {
			return fmt.Errorf("clusterdns: StubDomains: %w", err)
		}
		d := canonical(domain)
		if mdns.IsSubDomain(cluster, d) {
			return fmt.Errorf("clusterdns: StubDomains: %q is inside the cluster domain %q, which the kubernetes plugin answers: use a domain outside it, such as mesh", domain, c.ClusterDomain)
		}
		if other, dup := seen[d]; dup {
			return fmt.Errorf("clusterdns: StubDomains: %q and %q are the same domain: give it once", other, domain)
		}
		seen[d] = domain
		if err := checkAddr(c.StubDomains[domain]); err != nil {
			return fmt.Errorf("clusterdns: StubDomains[%q]: %w", domain, err)
		}
	}
	return nil
}

// checkDomain accepts a DNS name other than the root, with or without the
// final dot.
func checkDomain(d string) error {
	if d == "" || d == "." {
		return fmt.Errorf("domain %q is empty or the root: give a domain such as mesh", d)
	}
	if _, ok := mdns.IsDomainName(d); !ok || strings.ContainsAny(d, " \t\n\"{}#;") {
		return fmt.Errorf("%q is not a domain name: use letters, digits, '-' and dots, such as mesh", d)
	}
	return nil
}

// checkAddr accepts "ip:port" with a port other than 0, what CoreDNS's
// forward and bind take.
func checkAddr(a string) error {
	ap, err := netip.ParseAddrPort(a)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("%q is not an IP address and port: write it as 10.96.0.20:53 or [fd00::20]:53", a)
	}
	return nil
}

// canonical is d lowercased with the final dot.
func canonical(d string) string { return mdns.CanonicalName(d) }

// zoneName is d as a Corefile server block key: lowercase, no final dot.
func zoneName(d string) string { return strings.TrimSuffix(canonical(d), ".") }

// StubDomainStanza is the Corefile server block that makes a cluster's
// CoreDNS send every query under domain to the DNS server at upstream
// ("ip:port"), port being the port CoreDNS serves on (53 in a cluster). It
// is the stanza atoll's chart documents for "mesh", upstream being the
// zone's DNS Service, and what Start runs for each of Config.StubDomains.
// A name of the cluster domain that points into domain (an ExternalName
// Service → backend.mesh) is followed through this block too, since
// CoreDNS resolves the CNAME target through its own server blocks.
func StubDomainStanza(domain string, port int, upstream string) string {
	return stubBlock(domain, port, upstream, nil)
}

// stubBlock renders StubDomainStanza with extra directives first.
func stubBlock(domain string, port int, upstream string, extra []string) string {
	lines := append(slices.Clone(extra),
		"errors",
		"cache "+strconv.Itoa(cacheSeconds),
		"forward . "+upstream,
	)
	return block(zoneName(domain)+":"+strconv.Itoa(port), lines)
}

// block renders one server block, directives indented by four spaces.
func block(key string, directives []string) string {
	var b strings.Builder
	b.WriteString(key + " {\n")
	for _, d := range directives {
		for _, line := range strings.Split(d, "\n") {
			b.WriteString("    " + line + "\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// corefile renders the whole configuration: the cluster block, as a
// cluster's Corefile has it, and a stub block per stub domain, all on
// addr and logging every query for the test's log.
func corefile(c Config, addr netip.AddrPort, readyAddr, kubeconfig string) string {
	port := int(addr.Port())
	extra := []string{"bind " + addr.Addr().String(), "log"}
	cluster := zoneName(c.ClusterDomain)
	kube := fmt.Sprintf("kubernetes %s in-addr.arpa ip6.arpa {\n    kubeconfig %q\n    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n}", cluster, kubeconfig)
	main := append(slices.Clone(extra), "errors", "ready "+readyAddr, kube, "cache "+strconv.Itoa(cacheSeconds))
	if c.Upstream != "" {
		main = append(main, "forward . "+c.Upstream)
	}
	out := block(".:"+strconv.Itoa(port), main)
	for _, domain := range slices.Sorted(maps.Keys(c.StubDomains)) {
		out += "\n" + stubBlock(domain, port, c.StubDomains[domain], extra)
	}
	return out
}
