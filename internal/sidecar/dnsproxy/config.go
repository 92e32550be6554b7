package dnsproxy

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults of the sidecar's DNS proxy (the sidecar contract).
const (
	DefaultListen      = "127.0.0.1:15053"
	DefaultDomain      = "mesh"
	DefaultTimeout     = 2 * time.Second
	DefaultMaxInFlight = 256
)

// Config says where the proxy listens and where it relays.
type Config struct {
	// Listen is the host:port the proxy serves UDP and TCP on.
	Listen string
	// Domain is the mesh domain; its names (and itself) go to Mesh.
	Domain string
	// Mesh is the host:port of the zone's DNS server.
	Mesh string
	// Upstream is the host:port of the DNS server for every other name,
	// the pod's cluster DNS.
	Upstream string
	// Timeout bounds one relayed query, the TCP retry included.
	Timeout time.Duration
	// MaxInFlight bounds the queries relayed at once; beyond it a query
	// is answered SERVFAIL at once.
	MaxInFlight int
}

// Default is the injected pod's configuration without its two upstreams.
func Default() Config {
	return Config{
		Listen:      DefaultListen,
		Domain:      DefaultDomain,
		Timeout:     DefaultTimeout,
		MaxInFlight: DefaultMaxInFlight,
	}
}

// Validate reports the first field that is wrong, and what to do.
func (c Config) Validate() error {
	if err := validHostPort(c.Listen, true); err != nil {
		return fmt.Errorf("dns proxy listen address %q is invalid: %w", c.Listen, err)
	}
	if c.Domain == "" {
		return errors.New("dns proxy domain is empty: set the mesh domain, e.g. \"mesh\"")
	}
	if _, ok := dns.IsDomainName(c.Domain); !ok || strings.Trim(c.Domain, ".") == "" {
		return fmt.Errorf("dns proxy domain %q is invalid: use a domain name such as \"mesh\"", c.Domain)
	}
	if c.Mesh == "" {
		return errors.New("dns proxy mesh address is empty: set the host:port of the zone's DNS server")
	}
	if err := validHostPort(c.Mesh, false); err != nil {
		return fmt.Errorf("dns proxy mesh address %q is invalid: %w", c.Mesh, err)
	}
	if c.Upstream == "" {
		return errors.New("dns proxy upstream address is empty: set the host:port of the cluster DNS (see UpstreamFromResolvConf)")
	}
	if err := validHostPort(c.Upstream, false); err != nil {
		return fmt.Errorf("dns proxy upstream address %q is invalid: %w", c.Upstream, err)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("dns proxy timeout %s is invalid: use a positive duration such as 2s", c.Timeout)
	}
	if c.MaxInFlight <= 0 {
		return fmt.Errorf("dns proxy max in flight %d is invalid: use a positive number such as %d", c.MaxInFlight, DefaultMaxInFlight)
	}
	return nil
}

// validHostPort checks host:port; port 0 only where zeroOK (a listener).
func validHostPort(s string, zeroOK bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("use host:port, e.g. 127.0.0.1:53 or [::1]:53: %w", err)
	}
	if host == "" {
		return errors.New("the host is empty: use host:port, e.g. 127.0.0.1:53")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return fmt.Errorf("port %q is not a port number: use 1-65535", port)
	}
	return nil
}

// UpstreamFromResolvConf returns the first nameserver of the resolv.conf at
// path as host:port with port 53 ("10.96.0.10:53", "[fd00::a]:53"): in a pod,
// the cluster DNS. Comments ('#' or ';') and other options are skipped.
func UpstreamFromResolvConf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the cluster DNS from %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "nameserver" {
			continue
		}
		if len(fields) < 2 {
			return "", fmt.Errorf("%s line %d: nameserver has no address: write \"nameserver <IP>\"", path, n)
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil {
			return "", fmt.Errorf("%s line %d: nameserver %q is not an IP address: write \"nameserver <IP>\"", path, n, fields[1])
		}
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading the cluster DNS from %s: %w", path, err)
	}
	return "", fmt.Errorf("%s has no nameserver line: set Upstream to the cluster DNS's host:port instead", path)
}
