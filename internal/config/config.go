// Package config holds the checks shared by the control planes' typed
// configurations. Each check names the setting, says what is wrong and what
// to use instead.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// CheckListenAddr checks a host:port listener address; port 0 picks a free
// port.
func CheckListenAddr(setting, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port (e.g. 127.0.0.1:5681 or :5681)", setting, addr)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%s: host %q is not an IP address: listen on an address of this machine, or leave it empty for all", setting, host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%s: port %q is not a number from 0 to 65535", setting, port)
	}
	return nil
}

// CheckURL checks an absolute URL whose scheme is one of schemes.
func CheckURL(setting, raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%s: %q is not a URL such as %s://HOST:PORT", setting, raw, schemes[0])
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return nil
		}
	}
	return fmt.Errorf("%s: %q has scheme %q: use %v", setting, raw, u.Scheme, schemes)
}

// CheckCIDR checks an address range such as 240.0.0.0/4.
func CheckCIDR(setting, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("%s: %q is not an address range such as 240.0.0.0/4", setting, cidr)
	}
	if p.Addr().BitLen()-p.Bits() < 8 {
		return fmt.Errorf("%s: %s is too small for service VIPs: use at least a /24 (IPv4) or /120 (IPv6)", setting, cidr)
	}
	if p.Masked() != p {
		return fmt.Errorf("%s: %s has host bits set: use %s", setting, cidr, p.Masked())
	}
	return nil
}

// IsDNSName says whether s is a DNS name a certificate may cover: dot-
// separated labels of letters, digits and inner hyphens, each at most 63
// bytes, 253 in all, optionally starting with a "*." wildcard.
func IsDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
