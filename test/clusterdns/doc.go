// Package clusterdns runs a cluster's DNS for tests: a real CoreDNS,
// built from its Go module (`make coredns`, test/coredns), configured as a
// Kubernetes cluster configures it — the kubernetes plugin answering
// cluster.local from a real API server (test/kubeenv), `forward .` to an
// upstream — plus the stub-domain stanza atoll's chart documents, which
// sends `mesh` to the zone's DNS.
//
// CoreDNS reads the API server as a ServiceAccount that Start creates and
// grants exactly Rules (list and watch of Services, EndpointSlices and
// Namespaces), so a permission CoreDNS needs and the rules lack shows up
// as a CoreDNS that never becomes ready.
//
// Usage:
//
//	func TestMeshNames(t *testing.T) {
//		env := kubeenv.Start(t)
//		dns := clusterdns.Start(t, clusterdns.Config{
//			Kube:        env,
//			StubDomains: map[string]string{"mesh": zoneDNSAddr}, // the zone's DNS, "ip:port"
//		})
//		// Ask dns.Addr (UDP or TCP) for backend.mesh or
//		// <service>.<namespace>.svc.cluster.local.
//	}
//
// StubDomainStanza renders the server block for a cluster's Corefile; the
// chart and the README show the same text, and Start runs it (with `bind`
// and `log` added for tests).
package clusterdns
