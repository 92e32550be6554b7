package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTransparentProxyCommand runs bin/atoll transparent-proxy as the
// injected init container does, inside a network namespace the test
// creates, with the real iptables; the redirections themselves are
// exercised in internal/transparentproxy.
func TestTransparentProxyCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the transparent-proxy test creates a network namespace and needs root")
	}
	for _, tool := range []string{"ip", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make tools (it installs iptables and iproute2)", tool)
		}
	}
	ns := fmt.Sprintf("atoll-e2e-tp-%d", os.Getpid())
	sh(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v\n%s", ns, err, out)
		}
	})
	// A rule of someone else's, to be kept.
	sh(t, "ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.9", "-j", "RETURN")
	before := saved(t, ns)

	atoll := func(args ...string) string {
		return sh(t, append([]string{"ip", "netns", "exec", ns, filepath.Join(binDir, "atoll"), "transparent-proxy"}, args...)...)
	}
	gateway := []string{"install", "--proxy-uid", "5678", "--outbound-port", "15001", "--inbound-port", "15006",
		"--dns-port", "15053", "--redirect-inbound=false", "--exclude-outbound-cidrs", "169.254.169.254/32"}

	dry := atoll(append(gateway, "--dry-run")...)
	if !strings.Contains(dry, "-A OUTPUT -j ATOLL_OUTPUT") || !strings.Contains(dry, "-A ATOLL_OUTPUT -d 169.254.169.254/32 -j RETURN") {
		t.Fatalf("--dry-run printed no rules:\n%s", dry)
	}
	if got := saved(t, ns); got != before {
		t.Fatalf("--dry-run changed the rules:\n%s", got)
	}

	atoll(gateway...)
	installed := saved(t, ns)
	for _, want := range []string{
		"-A OUTPUT -j ATOLL_OUTPUT",
		"-A ATOLL_OUTPUT -m owner --uid-owner 5678 -j RETURN",
		"-A ATOLL_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A ATOLL_DNS -p udp -j REDIRECT --to-ports 15053",
		"-A OUTPUT -d 203.0.113.9/32 -j RETURN",
	} {
		if !strings.Contains(installed, want) {
			t.Errorf("installed rules lack %q:\n%s", want, installed)
		}
	}
	if strings.Contains(installed, "PREROUTING -p tcp -j ATOLL_INBOUND") {
		t.Errorf("a gateway's inbound is redirected:\n%s", installed)
	}

	if out := atoll("uninstall"); !strings.Contains(out, "rules removed") {
		t.Fatalf("uninstall said %q", out)
	}
	if got := saved(t, ns); got != before {
		t.Fatalf("uninstall did not restore the rules:\n--- before\n%s--- after\n%s", before, got)
	}
	if out := atoll("uninstall"); !strings.Contains(out, "no atoll rules") {
		t.Fatalf("uninstalling again said %q, want no atoll rules", out)
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var saveCounters = regexp.MustCompile(`\[\d+:\d+\]`)

// saved is the namespace's iptables-save without comments and counters.
func saved(t *testing.T, ns string) string {
	var b strings.Builder
	for _, l := range strings.Split(sh(t, "ip", "netns", "exec", ns, "iptables-save"), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			b.WriteString(saveCounters.ReplaceAllString(l, "[0:0]") + "\n")
		}
	}
	return b.String()
}
