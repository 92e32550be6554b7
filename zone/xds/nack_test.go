package xds

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// A refused configuration is counted and not sent again; the next change
// is. Versions carry the server's start, so a restarted zone never repeats
// one.
func TestNACKIsCountedAndNotResent(t *testing.T) {
	s, st, changed := pushTopology(t, 1)
	stream := adsStream(t, s, 30*time.Second)
	ctx := stream.Context()
	node := &corev3.Node{Id: "default.gw-0", UserAgentName: "envoy"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeCDS}); err != nil {
		t.Fatal(err)
	}
	responses := make(chan *discoveryv3.DiscoveryResponse, 8)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(responses)
				return
			}
			responses <- r
		}
	}()
	next := func(what string, within time.Duration) *discoveryv3.DiscoveryResponse {
		t.Helper()
		select {
		case r, ok := <-responses:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			return r
		case <-time.After(within):
			return nil
		}
	}
	first := next("the clusters", 10*time.Second)
	if first == nil {
		t.Fatal("no clusters")
	}
	if !strings.HasPrefix(first.GetVersionInfo(), s.versionPrefix) {
		t.Errorf("version %q does not start with the server's start %q", first.GetVersionInfo(), s.versionPrefix)
	}
	// Refuse it.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: typeCDS, ResponseNonce: first.GetNonce(),
		ErrorDetail: &statuspb.Status{Code: 3, Message: "cluster svc-1:8080: refused for the test"}}); err != nil {
		t.Fatal(err)
	}
	if again := next("after the NACK", time.Second); again != nil {
		t.Fatalf("the refused configuration was sent again: version %s", again.GetVersionInfo())
	}
	if n := testutil.ToFloat64(s.nacks.WithLabelValues("Cluster")); n != 1 {
		t.Errorf("atoll_xds_nacks_total{type=Cluster} = %v, want 1", n)
	}
	s.mu.Lock()
	nacked := s.nodes["default.gw-0"].nacked["Cluster"]
	s.mu.Unlock()
	if !strings.Contains(nacked, "refused for the test") {
		t.Errorf("the proxy's status does not show its NACK: %q", nacked)
	}
	// The zone's list of proxies shows it out of sync, with the refusal.
	rec := httptest.NewRecorder()
	s.ListHandler(rec, httptest.NewRequest("GET", "/proxies?mesh=default", nil))
	var list struct {
		Items []ProxyStatus `json:"items"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("GET /proxies: %v %s", err, rec.Body)
	}
	if p := list.Items[0]; p.Mesh != "default" || p.Dataplane != "gw-0" || p.InSync || !strings.Contains(p.Nacked["Cluster"], "refused for the test") {
		t.Errorf("GET /proxies: %+v, want gw-0 out of sync with its NACK", p)
	}
	rec = httptest.NewRecorder()
	s.ListHandler(rec, httptest.NewRequest("GET", "/proxies?mesh=other", nil))
	if !strings.Contains(rec.Body.String(), `"total":0`) {
		t.Errorf("GET /proxies?mesh=other: %s", rec.Body)
	}

	// A new service: a new configuration, with a new version.
	se := changed.Spec.(*v1alpha1.ServiceEndpoints)
	fresh := &resource.Resource{Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "default", Name: "se-new"},
		Spec: &v1alpha1.ServiceEndpoints{Zone: "zone-2", Service: "svc-new", Endpoints: se.Endpoints[:1]}}
	if _, err := st.Create(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	r := next("after a change", 10*time.Second)
	if r == nil || r.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("after a change: %v", r)
	}

	// Another server (a restarted zone) starts its versions elsewhere.
	other, _, _ := pushTopology(t, 1)
	if other.versionPrefix == s.versionPrefix {
		t.Errorf("two servers share the version prefix %q", s.versionPrefix)
	}
}
