package xds

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// The API shows the ingress's configuration, routes by SNI to this zone's
// ready instances, without its private key; another zone's ingress is
// asked of that zone.
func TestIngressConfigLeavesTheKeyOut(t *testing.T) {
	st := memstore.New()
	if _, err := st.Create(context.Background(), &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "web-1"},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{Address: "10.1.0.2",
			Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{Port: 8080, Tags: map[string]string{resource.ServiceTag: "web"}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	key := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret\n-----END EC PRIVATE KEY-----\n")
	s := &Server{cfg: Config{Zone: "zone-1", Store: st,
		Ingress: IngressConfig{Address: "10.1.255.1", Port: 10001, CertPEM: []byte("cert"), KeyPEM: key}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /zoneingresses/{name}/xds/config", s.IngressConfigHandler)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/zoneingresses/zone-1/xds/config", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, `"web.8080.default"`) || !strings.Contains(body, `"10.1.0.2"`) {
		t.Fatalf("GET /zoneingresses/zone-1/xds/config: %d %s", rec.Code, body)
	}
	if strings.Contains(body, base64.StdEncoding.EncodeToString(key)) || strings.Contains(body, "secret") {
		t.Errorf("the configuration shows the ingress's private key:\n%s", body)
	}
	if !strings.Contains(body, "left out: the ingress's private key stays in the zone's data dir") {
		t.Errorf("the configuration does not say the key is left out:\n%s", body)
	}

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/zoneingresses/zone-2/xds/config", nil))
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "this is zone zone-1: ask zone zone-2's own API") {
		t.Errorf("another zone's ingress: %d %s", rec.Code, rec.Body)
	}
}
