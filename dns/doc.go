// Package dns is the zone's embedded DNS server for .mesh names: it answers
// <service>.mesh (and <name>.<namespace>.svc.<port>.mesh for Kubernetes
// services) with the service's virtual IP.
//
// Records live in an immutable Table that is rebuilt on change and swapped
// in atomically, so lookups take no lock:
//
//	srv := dns.NewServer(dns.Config{Addr: "127.0.0.1:5653", Domain: "mesh", TTL: 5 * time.Second}, logger, registry)
//	srv.SetTable(dns.NewTable("mesh", map[string][]netip.Addr{"backend": {netip.MustParseAddr("240.0.0.1")}}))
//	err := srv.Run(ctx) // UDP and TCP until ctx ends
//
// Names outside the domain are forwarded to Config.Upstream only for
// clients in Config.UpstreamAllow, at most Config.MaxInFlight at a time;
// anyone may ask for names in the domain.
package dns
