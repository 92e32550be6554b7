package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
