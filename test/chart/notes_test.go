package chart

import (
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/test/clusterdns"
)

// notes renders the install notes of mode's values with further helm
// flags, as `helm install --dry-run=client` prints them.
func notes(t *testing.T, mode string, flags ...string) string {
	t.Helper()
	args := append([]string{"install", Release, Dir, "--namespace", Namespace, "--dry-run=client", "--values", valuesFile(mode)}, flags...)
	out, err := Helm(helmPath(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	_, n, ok := strings.Cut(string(out), "\nNOTES:\n")
	if !ok {
		t.Fatalf("helm install --dry-run printed no NOTES:\n%s", out)
	}
	return n
}

// TestNotesCoreDNSStanza checks the opt-in CoreDNS stanza forwards the mesh
// domain to the zone's DNS Service: its fixed ClusterIP when zone.dns.clusterIP
// is set, else a placeholder with the command that prints the ClusterIP; and
// that it is left out unless asked for.
func TestNotesCoreDNSStanza(t *testing.T) {
	// The stanza the local e2e provider's cluster DNS runs (test/clusterdns).
	stanza := clusterdns.StubDomainStanza("mesh", 53, "10.96.0.53:53")
	if n := notes(t, "zone", "--set", "zone.dns.clusterIP=10.96.0.53"); !strings.Contains(n, stanza) {
		t.Errorf("the notes lack the stanza\n%s\nthey are:\n%s", stanza, n)
	}
	n := notes(t, "zone", "--set", "zone.dns.servicePort=5353", "--set", "zone.dns.domain=mesh.internal")
	for _, want := range []string{
		"mesh.internal:53 {",
		"forward . CLUSTER_IP:5353\n",
		"kubectl -n atoll-system get service atoll-dns -o jsonpath='{.spec.clusterIP}'",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("the notes lack %q; they are:\n%s", want, n)
		}
	}
	if n := notes(t, "zone", "--set", "zone.dns.coreDNSSnippet=false"); strings.Contains(n, "forward .") {
		t.Errorf("zone.dns.coreDNSSnippet=false still prints a stanza:\n%s", n)
	}
	if n := notes(t, "global"); !strings.Contains(n, "atollctl --api-url https://localhost:5681 --api-ca-file api-ca.pem generate zone-token --zone ZONE") {
		t.Errorf("the global's notes do not say how to make a zone token:\n%s", n)
	}
}
