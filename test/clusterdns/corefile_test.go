package clusterdns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// The stanza the chart documents, exactly.
func TestStubDomainStanza(t *testing.T) {
	got := StubDomainStanza("Mesh.", 53, "10.96.0.20:53")
	want := "mesh:53 {\n    errors\n    cache 5\n    forward . 10.96.0.20:53\n}\n"
	if got != want {
		t.Errorf("StubDomainStanza:\n%s\nwant:\n%s", got, want)
	}
}

// What Start runs for a stub domain is the documented stanza with only
// bind and log added, on the port of the cluster block.
func TestCorefileRunsTheStanza(t *testing.T) {
	cfg := Config{Upstream: "127.0.0.1:5300", StubDomains: map[string]string{"mesh": "127.0.0.1:5653"}}.withDefaults()
	got := corefile(cfg, netip.MustParseAddrPort("127.0.0.1:1053"), "127.0.0.1:8181", "/tmp/kc")
	stanza := StubDomainStanza("mesh", 1053, "127.0.0.1:5653")
	withTestLines := strings.Replace(stanza, " {\n", " {\n    bind 127.0.0.1\n    log\n", 1)
	if !strings.Contains(got, withTestLines) {
		t.Errorf("Corefile:\n%s\nhas no block\n%s", got, withTestLines)
	}
	for _, want := range []string{
		".:1053 {\n    bind 127.0.0.1\n",
		"    ready 127.0.0.1:8181\n",
		"    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        kubeconfig \"/tmp/kc\"\n",
		"    forward . 127.0.0.1:5300\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Corefile:\n%s\nlacks %q", got, want)
		}
	}
	if noUpstream := corefile(Config{}.withDefaults(), netip.MustParseAddrPort("127.0.0.1:1053"), "127.0.0.1:8181", "/tmp/kc"); strings.Contains(noUpstream, "forward") {
		t.Errorf("Corefile without Upstream or stub domains forwards:\n%s", noUpstream)
	}
}

func TestValidate(t *testing.T) {
	env := &kubeenv.Env{} // Validate only checks that there is one
	for _, c := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"defaults", Config{Kube: env}, ""},
		{"everything", Config{Kube: env, ClusterDomain: "example.internal.", Upstream: "[fd00::1]:53",
			StubDomains: map[string]string{"mesh": "10.96.0.20:53", "corp.example": "10.0.0.2:5353"}, Addr: "127.0.0.2:53"}, ""},
		{"no API server", Config{}, "Config.Kube is nil"},
		{"bad cluster domain", Config{Kube: env, ClusterDomain: "bad domain"}, "ClusterDomain"},
		{"root as cluster domain", Config{Kube: env, ClusterDomain: "."}, "ClusterDomain"},
		{"upstream without port", Config{Kube: env, Upstream: "10.0.0.1"}, "Upstream: \"10.0.0.1\" is not an IP address and port"},
		{"upstream as a name", Config{Kube: env, Upstream: "dns.example:53"}, "Upstream"},
		{"port 0", Config{Kube: env, Addr: "127.0.0.1:0"}, "Addr"},
		{"stub root", Config{Kube: env, StubDomains: map[string]string{".": "10.0.0.1:53"}}, "StubDomains"},
		{"stub inside the cluster domain", Config{Kube: env, StubDomains: map[string]string{"svc.cluster.local": "10.0.0.1:53"}}, "inside the cluster domain"},
		{"stub given twice", Config{Kube: env, StubDomains: map[string]string{"mesh": "10.0.0.1:53", "MESH.": "10.0.0.1:53"}}, "same domain"},
		{"stub without port", Config{Kube: env, StubDomains: map[string]string{"mesh": "10.0.0.1"}}, `StubDomains["mesh"]`},
		{"stub with a brace", Config{Kube: env, StubDomains: map[string]string{"me{sh": "10.0.0.1:53"}}, "not a domain name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("Validate: %v, want an error containing %q", err, c.want)
			}
		})
	}
}
