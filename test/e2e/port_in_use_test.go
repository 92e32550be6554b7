package e2e

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestPortInUse starts each control plane with one listener on a port
// another process holds: it must exit naming the flag the user typed and
// what to do, before anything is logged as started or listening.
func TestPortInUse(t *testing.T) {
	const hint = ": address already in use; pick another port or stop the process using it"
	global := func(dir string, flags ...string) []string {
		args := []string{"global", "--data-dir", dir, "--log-format", "json"}
		for _, f := range []string{"--api-addr", "--kds-addr", "--etcd-client-addr", "--etcd-peer-addr"} {
			if !slices.Contains(flags, f) {
				args = append(args, f, "127.0.0.1:0")
			}
		}
		return append(args, flags...)
	}
	zone := func(dir string, flags ...string) []string {
		args := []string{"zone", "--zone", "zone-1", "--data-dir", dir, "--log-format", "json"}
		for _, f := range []string{"--api-addr", "--xds-addr", "--dns-addr"} {
			if !slices.Contains(flags, f) {
				args = append(args, f, "127.0.0.1:0")
			}
		}
		return append(args, flags...)
	}
	tests := []struct {
		name string
		// udp holds the port over UDP instead of TCP.
		udp  bool
		args func(dir, addr string) []string
		want func(addr string) string
	}{
		{"global --api-addr", false, func(d, a string) []string { return global(d, "--api-addr", a) },
			func(a string) string { return "atoll: --api-addr " + a + hint }},
		{"global --kds-addr", false, func(d, a string) []string { return global(d, "--kds-addr", a) },
			func(a string) string { return "atoll: --kds-addr " + a + hint }},
		{"global --etcd-client-addr", false, func(d, a string) []string { return global(d, "--etcd-client-addr", a) },
			func(a string) string { return "atoll: --etcd-client-addr " + a + hint }},
		{"global --etcd-peer-addr", false, func(d, a string) []string { return global(d, "--etcd-peer-addr", a) },
			func(a string) string { return "atoll: --etcd-peer-addr " + a + hint }},
		{"zone --api-addr", false, func(d, a string) []string { return zone(d, "--api-addr", a) },
			func(a string) string { return "atoll: --api-addr " + a + hint }},
		{"zone --xds-addr", false, func(d, a string) []string { return zone(d, "--xds-addr", a) },
			func(a string) string { return "atoll: --xds-addr " + a + hint }},
		{"zone --dns-addr over TCP", false, func(d, a string) []string { return zone(d, "--dns-addr", a) },
			func(a string) string { return "atoll: --dns-addr " + a + " (tcp)" + hint }},
		{"zone --dns-addr over UDP", true, func(d, a string) []string { return zone(d, "--dns-addr", a) },
			func(a string) string { return "atoll: --dns-addr " + a + " (udp)" + hint }},
		{"zone --injector-addr", false, func(d, a string) []string {
			return zone(d, "--mode", "kubernetes", "--injector-addr", a,
				"--injector-xds-address", "atoll-zone.atoll-system.svc:5678", "--injector-dns-address", "atoll-zone-dns.atoll-system.svc:53")
		}, func(a string) string { return "atoll: --injector-addr " + a + hint }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := holdPort(t, tt.udp)
			out, err := runAtoll(t, nil, tt.args(t.TempDir(), addr)...)
			if err == nil {
				t.Fatalf("atoll ran with %s taken; output:\n%s", addr, out)
			}
			if !strings.Contains(out, tt.want(addr)+"\n") {
				t.Errorf("output lacks %q:\n%s", tt.want(addr), out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "started") || strings.Contains(line, "listening") || strings.Contains(line, "etcd ready") {
					t.Errorf("logged before the taken port was reported: %s", line)
				}
			}
		})
	}
}

// holdPort binds a free loopback port over TCP (or UDP) until the test
// ends and returns its address.
func holdPort(t *testing.T, udp bool) string {
	t.Helper()
	addr := freePort(t)
	if udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return addr
}
