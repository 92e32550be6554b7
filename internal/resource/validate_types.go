package resource

import (
	"fmt"
	"maps"
	"net/netip"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/naming"
)

var protocols = map[string]bool{"tcp": true, "http": true, "http2": true, "grpc": true}

func validateDataplane(r *Resource, v *violations) {
	dp := r.Spec.(*v1alpha1.Dataplane)
	n := dp.GetNetworking()
	if n == nil {
		v.add("networking", "is required")
		return
	}
	if msg := checkAddress(n.GetAddress()); msg != "" {
		v.add("networking.address", "%s", msg)
	}
	if a := n.GetAdvertisedAddress(); a != "" {
		if msg := checkAddress(a); msg != "" {
			v.add("networking.advertisedAddress", "%s", msg)
		}
	}
	if gw := n.GetGateway(); gw != nil {
		if gw.GetType() != v1alpha1.Dataplane_Networking_Gateway_DELEGATED {
			v.add("networking.gateway.type", "%q is not supported: use DELEGATED", gw.GetType().String())
		}
		validateTags(gw.GetTags(), func() string { return "networking.gateway.tags" }, v)
		if len(n.GetInbound()) > 0 {
			v.add("networking.inbound", "a DELEGATED gateway may have no inbounds (traffic into the gateway bypasses its sidecar): remove them")
		}
		return
	}
	if len(n.GetInbound()) == 0 {
		v.add("networking.inbound", "is empty: a Dataplane needs at least one inbound, or a gateway")
	}
	type endpoint struct {
		addr string
		port uint32
	}
	seen := map[endpoint]int{}
	for i, in := range n.GetInbound() {
		// Field paths are formatted only for a violation.
		f := func() string { return fmt.Sprintf("networking.inbound[%d]", i) }
		if msg := checkPort(in.GetPort()); msg != "" {
			v.add(f()+".port", "%s", msg)
		}
		if sp := in.GetServicePort(); sp != 0 {
			if msg := checkPort(sp); msg != "" {
				v.add(f()+".servicePort", "%s", msg)
			}
		}
		if a := in.GetAddress(); a != "" {
			if msg := checkAddress(a); msg != "" {
				v.add(f()+".address", "%s", msg)
			}
		}
		validateTags(in.GetTags(), func() string { return f() + ".tags" }, v)
		ep := endpoint{addr: in.GetAddress(), port: in.GetPort()}
		if ep.addr == "" {
			ep.addr = n.GetAddress()
		}
		if j, dup := seen[ep]; dup {
			v.add(f()+".port", "%d is already used by networking.inbound[%d] on the same address", in.GetPort(), j)
		}
		seen[ep] = i
	}
}

// validateTags checks tags of an inbound or gateway: atoll.io/service is
// required and follows the naming rule (internal/naming), atoll.io/protocol
// must be known.
func validateTags(tags map[string]string, field func() string, v *violations) {
	if tags[ServiceTag] == "" {
		v.add(fmt.Sprintf("%s[%q]", field(), ServiceTag), "is required: name the service, e.g. %s: backend", ServiceTag)
	} else if msg := naming.CheckService(tags[ServiceTag]); msg != "" {
		v.add(fmt.Sprintf("%s[%q]", field(), ServiceTag), "%s", msg)
		rest := maps.Clone(tags) // reported once, not again as a tag value
		delete(rest, ServiceTag)
		tags = rest
	}
	if p, ok := tags[ProtocolTag]; ok && !protocols[p] {
		v.add(fmt.Sprintf("%s[%q]", field(), ProtocolTag), "%q is not supported: use tcp, http, http2 or grpc", p)
	}
	validateLabels(tags, field, v)
}

func validateZoneIngress(r *Resource, v *violations) {
	zi := r.Spec.(*v1alpha1.ZoneIngress)
	if msg := CheckName(zi.GetZone()); msg != "" {
		v.add("zone", "%s", msg)
	}
	validateZoneIngressName(r.Meta.Name, zi, v)
	if n := zi.GetNetworking(); n != nil {
		if n.GetAddress() != "" {
			if msg := checkAddress(n.GetAddress()); msg != "" {
				v.add("networking.address", "%s", msg)
			}
		}
		if n.GetAdvertisedAddress() != "" {
			if msg := checkAddress(n.GetAdvertisedAddress()); msg != "" {
				v.add("networking.advertisedAddress", "%s", msg)
			}
		}
		for f, p := range map[string]uint32{"networking.port": n.GetPort(), "networking.advertisedPort": n.GetAdvertisedPort()} {
			if p != 0 {
				if msg := checkPort(p); msg != "" {
					v.add(f, "%s", msg)
				}
			}
		}
	}
	for i, s := range zi.GetAvailableServices() {
		if p := s.GetPort(); p != 0 {
			if msg := checkPort(p); msg != "" {
				v.add(fmt.Sprintf("availableServices[%d].port", i), "%s", msg)
			}
		}
		// Field paths are formatted only for a violation.
		f := func() string { return fmt.Sprintf("availableServices[%d]", i) }
		if msg := CheckName(s.GetMesh()); msg != "" {
			v.add(f()+".mesh", "%s", msg)
		}
		// Not held to the naming rule: a zone offers what its Dataplanes
		// carry, including ones stored before the rule, and refusing the
		// ingress would cut the zone off. Where such a name maps to another
		// service's DNS name, the VIP allocator decides (internal/vip).
		if s.GetTags()[ServiceTag] == "" {
			v.add(fmt.Sprintf("%s.tags[%q]", f(), ServiceTag), "is required")
		}
		validateLabels(s.GetTags(), func() string { return f() + ".tags" }, v)
	}
}

// validateZoneIngressName checks that a ZoneIngress is one of a zone's
// records (records.go): the zone's own, named after it (with its services
// too when an older zone wrote it), or the record of one service, named
// ZoneServiceName of that service.
func validateZoneIngressName(name string, zi *v1alpha1.ZoneIngress, v *violations) {
	if name == zi.GetZone() {
		return
	}
	av := zi.GetAvailableServices()
	if len(av) != 1 {
		v.add("name", "%q is not zone %q's name, so the ZoneIngress is the record of one service, but it offers %d: "+
			"name the zone's own record after the zone, and give each (mesh, tags, port) a record of its own", name, zi.GetZone(), len(av))
		return
	}
	s := av[0]
	if want := ZoneServiceName(zi.GetZone(), s.GetMesh(), s.GetTags(), s.GetPort()); name != want {
		v.add("name", "%q is neither zone %q's name nor the name of its record of the service it offers: name it %q", name, zi.GetZone(), want)
	}
}

func validateServiceEndpoints(r *Resource, v *violations) {
	se := r.Spec.(*v1alpha1.ServiceEndpoints)
	if msg := CheckName(se.GetZone()); msg != "" {
		v.add("zone", "%s", msg)
	}
	if se.GetService() == "" || len(se.GetService()) > 253 || !isLabelValue(se.GetService()) {
		v.add("service", "%q is not a service name", se.GetService())
	}
	for i, e := range se.GetEndpoints() {
		f := func() string { return fmt.Sprintf("endpoints[%d]", i) }
		if msg := checkAddress(e.GetAddress()); msg != "" {
			v.add(f()+".address", "%s", msg)
		}
		if msg := checkPort(e.GetPort()); msg != "" {
			v.add(f()+".port", "%s", msg)
		}
		validateLabels(e.GetTags(), func() string { return f() + ".tags" }, v)
	}
}

func validateVIPTable(r *Resource, v *violations) {
	entries := r.Spec.(*v1alpha1.VIPTable).GetEntries()
	// The legacy table of a mesh holds any number of entries; a service's
	// record (records.go) holds exactly that service's.
	if r.Meta.Name != VIPTableName {
		switch {
		case len(entries) != 1:
			v.add("entries", "a service's VIP record holds exactly one entry, has %d (only the mesh's legacy VIPTable %q holds several)", len(entries), VIPTableName)
		case r.Meta.Name != VIPRecordName(entries[0].GetService()):
			v.add("name", "%q: the VIP record of service %q is named %q (or the mesh's legacy VIPTable %q)",
				r.Meta.Name, entries[0].GetService(), VIPRecordName(entries[0].GetService()), VIPTableName)
		}
	}
	seenVIP := map[string]int{}
	for i, e := range entries {
		// Field paths are formatted only for a violation.
		f := func() string { return fmt.Sprintf("entries[%d]", i) }
		if e.GetService() == "" {
			v.add(f()+".service", "is required")
		}
		ip, err := netip.ParseAddr(e.GetVip())
		if err != nil {
			v.add(f()+".vip", "%q is not an IP address", e.GetVip())
			continue
		}
		if j, dup := seenVIP[ip.String()]; dup {
			v.add(f()+".vip", "%s is already the VIP of entries[%d]", ip, j)
		}
		seenVIP[ip.String()] = i
		if e.GetVip6() != "" {
			if ip6, err := netip.ParseAddr(e.GetVip6()); err != nil || !ip6.Is6() {
				v.add(f()+".vip6", "%q is not an IPv6 address", e.GetVip6())
			}
		}
	}
}
