package main

import (
	"bytes"
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/atoll-mesh/atoll/internal/transparentproxy"
)

func runTransparentProxy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := transparentProxyCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestTransparentProxyFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"install", "--dry-run", "--exclude-outbound-cidrs", "10.0.0.0"}, `--exclude-outbound-cidrs: "10.0.0.0" is not a CIDR`},
		{[]string{"install", "--dry-run", "--dns-port", "0"}, "--dns-port 0 is invalid"},
		{[]string{"install", "--dry-run", "--exclude-outbound-ports", "80,http"}, `--exclude-outbound-ports: "http" is not a port`},
		{[]string{"install", "--dry-run", "--exclude-inbound-ports", "0"}, `--exclude-inbound-ports: "0" is not a port`},
		{[]string{"install", "--dry-run", "--iptables-backend", "xt"}, "--iptables-backend \"xt\" is invalid"},
		{[]string{"uninstall", "--iptables-backend", "xt"}, "--iptables-backend \"xt\" is invalid"},
	} {
		_, err := runTransparentProxy(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestTransparentProxyDryRunGateway(t *testing.T) {
	out, err := runTransparentProxy(t, "install", "--dry-run", "--redirect-inbound=false", "--exclude-outbound-ports", "5432")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-A ATOLL_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN", "-A OUTPUT -j ATOLL_OUTPUT", "REDIRECT --to-ports 15001"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PREROUTING") || strings.Contains(out, "15006") {
		t.Errorf("gateway dry run redirects inbound:\n%s", out)
	}
}

// The injector writes the init container's command with InstallArgs; the
// command must read back the very same configuration.
func TestInstallArgsRoundTrip(t *testing.T) {
	gateway := transparentproxy.Default()
	gateway.RedirectInbound = false
	gateway.ExcludeInboundPorts = nil
	full := transparentproxy.Default()
	full.IPv6 = true
	full.RedirectDNS = false
	full.ProxyUID = 1337
	full.ExcludeInboundPorts = []int{9901, 8443}
	full.ExcludeOutboundPorts = []int{5432}
	full.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for name, want := range map[string]transparentproxy.Config{"workload": transparentproxy.Default(), "gateway": gateway, "full": full} {
		args := want.InstallArgs()
		if args[0] != "transparent-proxy" || args[1] != "install" {
			t.Fatalf("%s: InstallArgs() = %v, want transparent-proxy install first", name, args)
		}
		var flags installFlags
		fs := pflag.NewFlagSet("install", pflag.ContinueOnError)
		flags.register(fs)
		if err := fs.Parse(args[2:]); err != nil {
			t.Fatalf("%s: parsing %v: %v", name, args, err)
		}
		got, err := flags.config()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %v read back as\n%+v, want\n%+v", name, args, got, want)
		}
	}
}
