package xds

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// A Kubernetes-form service is reached at the port its name carries (the
// Service's port), whatever port its instances listen on in each zone:
// zone-1's pods on 8080, zone-2's on 9090, one cluster and one listener on
// :80 for both, endpoints on each instance's own port.
func TestKubernetesServicesAreReachedAtTheirServicePort(t *testing.T) {
	const svc = "web_shop_svc_80"
	for _, mode := range []v1alpha1.Mesh_CrossZone_Mode{v1alpha1.Mesh_CrossZone_Direct, v1alpha1.Mesh_CrossZone_Ingress} {
		t.Run(mode.String(), func(t *testing.T) {
			in := Input{
				Zone: "zone-1", Domain: "mesh", MeshName: "default",
				Mesh: &v1alpha1.Mesh{CrossZone: &v1alpha1.Mesh_CrossZone{Mode: mode}},
				Dataplanes: []*resource.Resource{
					dp("kong", "10.1.0.1", true),
					dp("web-1", "10.1.0.2", false, inb(svc, 8080, 0, true)),
				},
				Ingresses: []*resource.Resource{{
					Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-2"},
					Spec: &v1alpha1.ZoneIngress{Zone: "zone-2",
						Networking: &v1alpha1.ZoneIngress_Networking{Address: "10.2.255.1", Port: 10002, AdvertisedAddress: "192.0.2.2", AdvertisedPort: 10002},
						// What zone-2's index offers: the service port.
						AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{
							{Mesh: "default", Tags: map[string]string{resource.ServiceTag: svc}, Port: 80, Instances: 2},
						}},
				}},
				Endpoints: []*resource.Resource{{
					Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: "se-1"},
					Spec: &v1alpha1.ServiceEndpoints{Zone: "zone-2", Service: svc, Endpoints: []*v1alpha1.ServiceEndpoints_Endpoint{
						{Address: "10.2.0.1", Port: 9090}, {Address: "10.2.0.2", Port: 9090},
					}},
				}},
				VIPs: map[string]netip.Addr{svc: netip.MustParseAddr("240.0.0.9")},
			}
			gw := generate(t, in, Envoy, "kong")
			clusters := keys(byName(gw, typeCDS))
			if !slices.Contains(clusters, svc+":80") || slices.ContainsFunc(clusters, func(c string) bool {
				return c == svc+":8080" || c == svc+":9090"
			}) {
				t.Errorf("clusters %v, want %s:80 only for web", clusters, svc)
			}
			l, ok := byName(gw, typeLDS)["outbound:240.0.0.9:80"].(*listenerv3.Listener)
			if !ok {
				t.Fatalf("no listener on the VIP at the service port 80: %v", keys(byName(gw, typeLDS)))
			}
			if got := listenerRoute(t, l); got != "240.0.0.9:80 unbound → "+svc+":80" {
				t.Errorf("VIP listener %s", got)
			}
			cla := byName(gw, typeEDS)[svc+":80"].(*endpointv3.ClusterLoadAssignment)
			got := groups(cla)
			if len(got) != 2 || !slices.Equal(got[0].eps, []string{"10.1.0.2:8080"}) {
				t.Fatalf("endpoints %+v, want zone-1's pod on its own port 8080 first", got)
			}
			want := []string{"10.2.0.1:9090", "10.2.0.2:9090"}
			if mode == v1alpha1.Mesh_CrossZone_Ingress {
				want = []string{"192.0.2.2:10002"}
			}
			if !slices.Equal(got[1].eps, want) {
				t.Errorf("zone-2's endpoints %v, want %v", got[1].eps, want)
			}
			pl := generate(t, in, Proxyless, "kong")
			if _, ok := byName(pl, typeLDS)["web.shop.svc.80.mesh:80"]; !ok {
				t.Errorf("proxyless listeners %v, want web.shop.svc.80.mesh:80", keys(byName(pl, typeLDS)))
			}
			// The incremental builder agrees.
			m := newMeshConfig("zone-1", "mesh", "default", "test-", quietLogger{slogDiscard()})
			versioned(in.Dataplanes, "1")
			versioned(in.Ingresses, "1")
			versioned(in.Endpoints, "1")
			m.update(in)
			m.serve(Envoy, in.VIPs, nil)
			sameResources(t, "incremental Envoy clusters", m.cdsEnvoy.GetResources(), gw[typeCDS],
				func(n string) bool { return strings.HasPrefix(n, "localhost:") })
			sameResources(t, "incremental endpoints", m.eds.GetResources(), gw[typeEDS], func(string) bool { return false })
			sameResources(t, "incremental listeners", m.gateway.GetResources(), gw[typeLDS], func(string) bool { return false })
		})
	}
}

// The zone's ingress offers a Kubernetes-form service under the SNI of its
// service port, and sends to the instances' own port.
func TestIngressOffersKubernetesServicesAtTheirServicePort(t *testing.T) {
	res, err := GenerateIngress(IngressInput{Zone: "zone-2", Address: "10.2.255.1", Port: 10002,
		Dataplanes: []*resource.Resource{dp("web-2", "10.2.0.1", false, inb("web_shop_svc_80", 9090, 0, true))},
		CertPEM:    []byte("-----BEGIN CERTIFICATE-----\nfixture\n-----END CERTIFICATE-----\n"),
		KeyPEM:     []byte("-----BEGIN EC PRIVATE KEY-----\nfixture\n-----END EC PRIVATE KEY-----\n")})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, res)
	l := res[typeLDS][0].(*listenerv3.Listener)
	if sni := l.GetFilterChains()[0].GetFilterChainMatch().GetServerNames()[0]; sni != SNI("default", "web_shop_svc_80", 80) {
		t.Errorf("SNI %s, want %s", sni, SNI("default", "web_shop_svc_80", 80))
	}
	cla := byName(res, typeEDS)["default/web_shop_svc_80:80"].(*endpointv3.ClusterLoadAssignment)
	if got := groups(cla); len(got) != 1 || !slices.Equal(got[0].eps, []string{"10.2.0.1:9090"}) {
		t.Errorf("ingress endpoints %+v, want the pod on 9090", got)
	}
}
