package resource_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// dataplane returns a valid standard Dataplane, changed by edit.
func dataplane(edit func(r *resource.Resource, n *v1alpha1.Dataplane_Networking)) *resource.Resource {
	n := &v1alpha1.Dataplane_Networking{
		Address: "10.0.0.1",
		Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
			Port:        9001,
			ServicePort: 8080,
			Tags:        map[string]string{resource.ServiceTag: "backend", resource.ProtocolTag: "grpc"},
		}},
	}
	r := &resource.Resource{
		Meta: resource.Meta{
			Type:   resource.DataplaneType,
			Mesh:   resource.DefaultMesh,
			Name:   "backend-1",
			Labels: map[string]string{resource.ZoneLabel: "zone-1", "team": "payments"},
		},
		Spec: &v1alpha1.Dataplane{Networking: n},
	}
	if edit != nil {
		edit(r, n)
	}
	return r
}

// gateway returns a valid DELEGATED gateway Dataplane, changed by edit.
func gateway(edit func(n *v1alpha1.Dataplane_Networking)) *resource.Resource {
	return dataplane(func(r *resource.Resource, n *v1alpha1.Dataplane_Networking) {
		r.Meta.Name = "kong"
		n.Inbound = nil
		n.Gateway = &v1alpha1.Dataplane_Networking_Gateway{
			Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
			Tags: map[string]string{resource.ServiceTag: "kong"},
		}
		if edit != nil {
			edit(n)
		}
	})
}

func inbound(port uint32, service string) *v1alpha1.Dataplane_Networking_Inbound {
	return &v1alpha1.Dataplane_Networking_Inbound{Port: port, Tags: map[string]string{resource.ServiceTag: service}}
}

func zoneIngress(zone string) *resource.Resource {
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone},
		Spec: &v1alpha1.ZoneIngress{
			Zone:       zone,
			Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.0.0.9", Port: 10001},
			AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{{
				Mesh: resource.DefaultMesh, Tags: map[string]string{resource.ServiceTag: "backend"}, Instances: 2,
			}},
		},
	}
}

// perService names r, a ZoneIngress offering one service, as that
// service's record.
func perService(r *resource.Resource) *resource.Resource {
	zi := r.Spec.(*v1alpha1.ZoneIngress)
	s := zi.AvailableServices[0]
	r.Meta.Name = resource.ZoneServiceName(zi.Zone, s.Mesh, s.Tags, s.Port)
	return r
}

func twoServices(r *resource.Resource) *resource.Resource {
	zi := r.Spec.(*v1alpha1.ZoneIngress)
	zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
		Mesh: resource.DefaultMesh, Tags: map[string]string{resource.ServiceTag: "frontend"}, Instances: 1,
	})
	return r
}

func TestValidate(t *testing.T) {
	serviceTagOf := func(field string) string { return field + `["atoll.io/service"]` }
	tests := []struct {
		name string
		r    *resource.Resource
		// field is the Violation.Field expected among the violations; ""
		// means the resource is valid.
		field string
	}{
		{name: "standard dataplane", r: dataplane(nil)},
		{name: "delegated gateway", r: gateway(nil)},
		{name: "host name address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Address = "backend.default.svc.cluster.local"
		})},
		{name: "IPv6 address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Address = "fd00::1"
			n.AdvertisedAddress = "2001:db8::7"
		})},
		{name: "same port on different inbound addresses", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			second := inbound(9001, "backend")
			second.Address = "10.0.0.2"
			n.Inbound = append(n.Inbound, second)
		})},
		{name: "mesh without spec fields", r: &resource.Resource{
			Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{},
		}},
		{name: "zone ingress", r: zoneIngress("zone-1")},

		{name: "gateway with inbounds", field: "networking.inbound", r: gateway(func(n *v1alpha1.Dataplane_Networking) {
			n.Inbound = []*v1alpha1.Dataplane_Networking_Inbound{inbound(9001, "kong")}
		})},
		{name: "gateway without service tag", field: serviceTagOf("networking.gateway.tags"), r: gateway(func(n *v1alpha1.Dataplane_Networking) {
			n.Gateway.Tags = map[string]string{"team": "edge"}
		})},
		{name: "gateway type unspecified", field: "networking.gateway.type", r: gateway(func(n *v1alpha1.Dataplane_Networking) {
			n.Gateway.Type = v1alpha1.Dataplane_Networking_Gateway_TYPE_UNSPECIFIED
		})},
		{name: "inbound without service tag", field: serviceTagOf("networking.inbound[0].tags"), r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			delete(n.Inbound[0].Tags, resource.ServiceTag)
		})},
		{name: "inbound port 0", field: "networking.inbound[0].port", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Port = 0
		})},
		{name: "inbound port 70000", field: "networking.inbound[0].port", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Port = 70000
		})},
		{name: "service port 70000", field: "networking.inbound[0].servicePort", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].ServicePort = 70000
		})},
		{name: "address 1.2.3", field: "networking.address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Address = "1.2.3"
		})},
		{name: "address not an ip!", field: "networking.address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Address = "not an ip!"
		})},
		{name: "empty address", field: "networking.address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Address = ""
		})},
		{name: "bad advertised address", field: "networking.advertisedAddress", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.AdvertisedAddress = "10.0.0"
		})},
		{name: "bad inbound address", field: "networking.inbound[0].address", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Address = "a b"
		})},
		{name: "duplicate inbound port", field: "networking.inbound[1].port", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound = append(n.Inbound, inbound(9001, "backend-admin"))
		})},
		{name: "duplicate inbound port on explicit same address", field: "networking.inbound[1].port", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			second := inbound(9001, "backend-admin")
			second.Address = n.Address
			n.Inbound = append(n.Inbound, second)
		})},
		{name: "unknown protocol", field: `networking.inbound[0].tags["atoll.io/protocol"]`, r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Tags[resource.ProtocolTag] = "udp"
		})},
		{name: "uppercase name", field: "name", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Name = "Backend-1"
		})},
		{name: "underscore in name", field: "name", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Name = "backend_1"
		})},
		{name: "64-character name", field: "name", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Name = strings.Repeat("a", 64)
		})},
		{name: "empty name", field: "name", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Name = ""
		})},
		{name: "dataplane without mesh", field: "mesh", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Mesh = ""
		})},
		{name: "dataplane with invalid mesh name", field: "mesh", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Mesh = "Default"
		})},
		{name: "mesh given on a Mesh", field: "mesh", r: &resource.Resource{
			Meta: resource.Meta{Type: resource.MeshType, Mesh: "default", Name: "default"}, Spec: &v1alpha1.Mesh{},
		}},
		{name: "mesh given on a Zone", field: "mesh", r: &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneType, Mesh: "default", Name: "zone-1"}, Spec: &v1alpha1.Zone{},
		}},
		{name: "bad label key", field: `labels["bad key!"]`, r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Labels["bad key!"] = "x"
		})},
		{name: "bad label key prefix", field: `labels["Example.com/team"]`, r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Labels["Example.com/team"] = "x"
		})},
		{name: "empty label value", field: `labels["team"]`, r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Labels["team"] = ""
		})},
		{name: "dataplane without networking", field: "networking", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Spec = &v1alpha1.Dataplane{}
		})},
		{name: "dataplane with neither inbound nor gateway", field: "networking.inbound", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound = nil
		})},
		{name: "spec of another type", field: "spec", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Spec = &v1alpha1.Mesh{}
		})},
		{name: "missing spec", field: "spec", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Spec = nil
		})},
		{name: "unknown type", field: "type", r: dataplane(func(r *resource.Resource, _ *v1alpha1.Dataplane_Networking) {
			r.Meta.Type = "Dataplan"
		})},
		{name: "kubernetes service name", r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Tags[resource.ServiceTag] = "backend_default_svc_80"
		})},
		{name: "upper-case service name", field: serviceTagOf("networking.inbound[0].tags"), r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Tags[resource.ServiceTag] = "Backend"
		})},
		{name: "dotted service name", field: serviceTagOf("networking.inbound[0].tags"), r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Tags[resource.ServiceTag] = "backend.default.svc.80"
		})},
		{name: "64-character service name", field: serviceTagOf("networking.inbound[0].tags"), r: dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
			n.Inbound[0].Tags[resource.ServiceTag] = strings.Repeat("b", 64)
		})},
		{name: "upper-case gateway service name", field: serviceTagOf("networking.gateway.tags"), r: gateway(func(n *v1alpha1.Dataplane_Networking) {
			n.Gateway.Tags[resource.ServiceTag] = "Kong"
		})},
		// ZoneIngresses of zones that hold Dataplanes stored before the
		// naming rule still sync; the VIP allocator settles conflicts.
		{name: "zone ingress offering an upper-case service", r: func() *resource.Resource {
			r := zoneIngress("zone-1")
			r.Spec.(*v1alpha1.ZoneIngress).AvailableServices[0].Tags[resource.ServiceTag] = "Backend"
			return r
		}()},
		{name: "zone ingress with invalid zone", field: "zone", r: zoneIngress("Zone_1")},
		{name: "zone's own record without services", r: func() *resource.Resource {
			r := zoneIngress("zone-1")
			r.Spec.(*v1alpha1.ZoneIngress).AvailableServices = nil
			return r
		}()},
		{name: "legacy zone record listing services", r: twoServices(zoneIngress("zone-1"))},
		{name: "per-service record", r: perService(zoneIngress("zone-1"))},
		{name: "per-service record with another zone's name", field: "name", r: func() *resource.Resource {
			r := perService(zoneIngress("zone-1"))
			r.Spec.(*v1alpha1.ZoneIngress).Zone = "zone-2"
			return r
		}()},
		{name: "per-service record named after another service", field: "name", r: func() *resource.Resource {
			r := perService(zoneIngress("zone-1"))
			r.Spec.(*v1alpha1.ZoneIngress).AvailableServices[0].Port = 8080
			return r
		}()},
		{name: "per-service record with two services", field: "name", r: twoServices(perService(zoneIngress("zone-1")))},
		{name: "per-service record with none", field: "name", r: func() *resource.Resource {
			r := perService(zoneIngress("zone-1"))
			r.Spec.(*v1alpha1.ZoneIngress).AvailableServices = nil
			return r
		}()},
		{name: "zone ingress named after nothing", field: "name", r: func() *resource.Resource {
			r := zoneIngress("zone-1")
			r.Meta.Name = "zone-1-ingress"
			return r
		}()},
		{name: "zone ingress without zone", field: "zone", r: zoneIngress("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := resource.Validate(tt.r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %s", tt.field)
			}
			if !resource.IsValidation(err) {
				t.Errorf("IsValidation(%v) = false, want true", err)
			}
			var verr *resource.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate() error %T is not a *resource.ValidationError", err)
			}
			var fields []string
			for _, v := range verr.Violations {
				if v.Field == tt.field {
					if v.Message == "" {
						t.Errorf("violation of %s has no message", v.Field)
					}
					if !strings.Contains(err.Error(), tt.field) {
						t.Errorf("error %q does not name %s", err, tt.field)
					}
					return
				}
				fields = append(fields, v.Field)
			}
			t.Errorf("violations name %q, want one naming %s (error: %v)", fields, tt.field, err)
		})
	}
}

func TestValidateReportsEveryViolation(t *testing.T) {
	r := dataplane(func(r *resource.Resource, n *v1alpha1.Dataplane_Networking) {
		r.Meta.Name = "Bad_Name"
		n.Address = "1.2.3"
		n.Inbound[0].Port = 0
	})
	err := resource.Validate(r)
	var verr *resource.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate() = %v, want a *resource.ValidationError", err)
	}
	got := map[string]bool{}
	for _, v := range verr.Violations {
		got[v.Field] = true
	}
	for _, f := range []string{"name", "networking.address", "networking.inbound[0].port"} {
		if !got[f] {
			t.Errorf("violations %v do not name %s", verr.Violations, f)
		}
	}
	if verr.Key != r.Key() {
		t.Errorf("ValidationError.Key = %v, want %v", verr.Key, r.Key())
	}
	if want := `invalid Dataplane "Bad_Name"`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestIsValidation(t *testing.T) {
	err := resource.Validate(zoneIngress("Zone_1"))
	if !resource.IsValidation(err) {
		t.Fatalf("IsValidation(%v) = false, want true", err)
	}
	if wrapped := errors.Join(errors.New("saving"), err); !resource.IsValidation(wrapped) {
		t.Errorf("IsValidation of a wrapped error = false, want true")
	}
	if resource.IsValidation(errors.New("connection refused")) {
		t.Errorf("IsValidation of a plain error = true, want false")
	}
	if resource.IsValidation(nil) {
		t.Errorf("IsValidation(nil) = true, want false")
	}
}

func TestServiceNameViolationIsReportedOnce(t *testing.T) {
	err := resource.Validate(dataplane(func(_ *resource.Resource, n *v1alpha1.Dataplane_Networking) {
		n.Inbound[0].Tags[resource.ServiceTag] = "Back end"
	}))
	var verr *resource.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Validate() = %v, want a *resource.ValidationError", err)
	}
	if len(verr.Violations) != 1 || !strings.Contains(verr.Violations[0].Message, `"Back end" has upper-case letters`) {
		t.Errorf("violations %v, want one naming the upper-case letters", verr.Violations)
	}
}

// Dataplanes stored before the naming rule still decode: only writes are
// validated.
func TestStoredUpperCaseServiceStillDecodes(t *testing.T) {
	r, err := resource.Decode([]byte(`{"type":"Dataplane","mesh":"default","name":"old-1","networking":{"address":"10.0.0.1","inbound":[{"port":9001,"tags":{"atoll.io/service":"Backend"}}]}}`))
	if err != nil {
		t.Fatalf("Decode() = %v", err)
	}
	if got := r.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()[0].GetTags()[resource.ServiceTag]; got != "Backend" {
		t.Errorf("service tag = %q, want Backend", got)
	}
	if err := resource.Validate(r); err == nil {
		t.Errorf("writing it again is accepted, want the naming rule's error")
	}
}
