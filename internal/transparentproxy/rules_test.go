package transparentproxy

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRulesGolden(t *testing.T) {
	gateway := Default()
	gateway.RedirectInbound = false
	gateway.ExcludeInboundPorts = nil

	excludes := Default()
	excludes.IPv6 = true
	excludes.ExcludeInboundPorts = []int{9901, 8443, 9901}
	excludes.ExcludeOutboundPorts = []int{5432, 443}
	excludes.ExcludeOutboundCIDRs = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("192.168.1.0/24"),
	}

	noDNS := gateway
	noDNS.RedirectDNS = false

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"workload", Default()},
		{"gateway", gateway},
		{"workload-ipv6-excludes", excludes},
		{"gateway-no-dns", noDNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			v4, v6 := Rules(tc.cfg)
			golden(t, tc.name+".v4.rules", v4)
			if tc.cfg.IPv6 {
				golden(t, tc.name+".v6.rules", v6)
			} else if v6 != "" {
				t.Fatalf("IPv6 is off but Rules returned IPv6 rules:\n%s", v6)
			}
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// The rules' promises, checked on the generated text so a golden refresh
// cannot silently drop them.
func TestRulesProperties(t *testing.T) {
	cfg := Default()
	cfg.IPv6 = true
	v4, v6 := Rules(cfg)
	for _, rules := range []string{v4, v6} {
		lines := strings.Split(strings.TrimSpace(rules), "\n")
		index := func(prefix string) int {
			for i, l := range lines {
				if strings.HasPrefix(l, prefix) {
					return i
				}
			}
			t.Fatalf("no rule starting %q in\n%s", prefix, rules)
			return -1
		}
		uid := index("-A ATOLL_OUTPUT -m owner --uid-owner 5678 -j RETURN")
		dns := index("-A ATOLL_OUTPUT -p udp -m udp --dport 53 -j ATOLL_DNS")
		lo := index("-A ATOLL_OUTPUT -o lo -j RETURN")
		redirect := index("-A ATOLL_OUTPUT -p tcp -j ATOLL_REDIRECT")
		if !(uid < dns && dns < lo && lo < redirect) {
			t.Fatalf("outbound rules out of order (uid %d, dns %d, lo %d, redirect %d):\n%s", uid, dns, lo, redirect, rules)
		}
		if lines[0] != "*nat" || lines[len(lines)-1] != "COMMIT" {
			t.Fatalf("not one nat table transaction:\n%s", rules)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "-A ") && !strings.HasPrefix(l, "-A "+ChainPrefix) &&
				!strings.HasSuffix(l, "-j "+ChainOutput) && !strings.HasSuffix(l, "-j "+ChainInbound) {
				t.Fatalf("rule outside atoll's chains other than a jump to them: %q", l)
			}
		}
	}
	if !strings.Contains(v6, "-d ::1/128 -j RETURN") || strings.Contains(v6, "127.0.0.0/8") {
		t.Fatalf("IPv6 rules do not exclude ::1 alone:\n%s", v6)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"root uid", func(c *Config) { c.ProxyUID = 0 }, "--proxy-uid 0 is root"},
		{"negative uid", func(c *Config) { c.ProxyUID = -1 }, "--proxy-uid -1 is invalid"},
		{"outbound port", func(c *Config) { c.OutboundPort = 0 }, "--outbound-port 0 is invalid"},
		{"inbound port", func(c *Config) { c.InboundPort = 70000 }, "--inbound-port 70000 is invalid"},
		{"dns port", func(c *Config) { c.DNSPort = -5 }, "--dns-port -5 is invalid"},
		{"same ports", func(c *Config) { c.InboundPort = c.OutboundPort }, "--inbound-port and --outbound-port are both 15001"},
		{"inbound exclude", func(c *Config) { c.ExcludeInboundPorts = []int{0} }, "--exclude-inbound-ports: port 0 is invalid"},
		{"outbound exclude", func(c *Config) { c.ExcludeOutboundPorts = []int{65536} }, "--exclude-outbound-ports: port 65536 is invalid"},
		{"exclude inbound port itself", func(c *Config) { c.ExcludeInboundPorts = []int{15006} }, "--exclude-inbound-ports lists the inbound port 15006"},
		{"host bits", func(c *Config) { c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} }, "--exclude-outbound-cidrs: 10.1.2.3/8 has host bits set: use 10.0.0.0/8"},
		{"zero prefix", func(c *Config) { c.ExcludeOutboundCIDRs = []netip.Prefix{{}} }, "--exclude-outbound-cidrs: a prefix is invalid"},
		{"mapped", func(c *Config) { c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")} }, "IPv4-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.modify(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	gateway := Default()
	gateway.RedirectInbound = false
	gateway.InboundPort = 0 // unused when inbound is not redirected
	if err := gateway.Validate(); err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default(): %v", err)
	}
}
