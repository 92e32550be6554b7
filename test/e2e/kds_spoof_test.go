package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

// rawZone is a hand-driven KDS client, to send what a real zone never would.
type rawZone struct {
	t      *testing.T
	stream v1alpha1.KDS_SyncClient
}

// It presents a token g issued for zone.
func dialRaw(t *testing.T, g *process, zone string) *rawZone {
	return dialRawToken(t, g, zone, zoneToken(t, g, zone))
}

// dialRawToken says Hello as zone presenting token ("" sends none), with
// opts on the stream.
func dialRawToken(t *testing.T, g *process, zone, token string, opts ...grpc.CallOption) *rawZone {
	pem, err := os.ReadFile(g.caFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := grpc.NewClient(g.kdsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, kds.TokenHeader, "Bearer "+token)
	}
	stream, err := v1alpha1.NewKDSClient(conn).Sync(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	z := &rawZone{t: t, stream: stream}
	z.send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Hello{Hello: &v1alpha1.Hello{Zone: zone}}})
	return z
}

func (z *rawZone) send(m *v1alpha1.SyncMessage) {
	if err := z.stream.Send(m); err != nil {
		z.t.Fatalf("send: %v", err)
	}
}

// push sends resources of t and returns the keys the global refused.
func (z *rawZone) push(t resource.Type, nonce string, rs ...*resource.Resource) []string {
	p := &v1alpha1.Push{Type: string(t), Nonce: nonce}
	for _, r := range rs {
		w, err := kds.ToWire(r, r.Meta.Name)
		if err != nil {
			z.t.Fatal(err)
		}
		w.Labels = r.Meta.Labels // keep even system labels: this zone lies
		p.Resources = append(p.Resources, w)
	}
	z.send(&v1alpha1.SyncMessage{Message: &v1alpha1.SyncMessage_Push{Push: p}})
	for {
		m, err := z.stream.Recv()
		if err != nil {
			z.t.Fatalf("stream ended: %v", err)
		}
		if ack := m.GetAck(); ack != nil && ack.GetNonce() == nonce {
			var keys []string
			for _, e := range ack.GetErrors() {
				keys = append(keys, e.GetKey())
			}
			sort.Strings(keys)
			return keys
		}
	}
}

func TestGlobalRefusesSpoofingAndInvalidResources(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z := dialRaw(t, g, "zone-9")

	good := storetest.Dataplane("default", "good", 8080)
	spoof := storetest.Dataplane("default", "spoof", 8080)
	spoof.Meta.Labels = map[string]string{resource.ZoneLabel: "zone-1"}
	bad := storetest.Dataplane("default", "bad", 0)
	if got := strings.Join(z.push(resource.DataplaneType, "1", good, spoof, bad), ","); got != "default/bad,default/spoof" {
		t.Errorf("NACKed %q, want default/bad,default/spoof", got)
	}

	other := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1"},
		Spec: &v1alpha1.ZoneIngress{Zone: "zone-1"},
	}
	if got := strings.Join(z.push(resource.ZoneIngressType, "2", other), ","); got != "/zone-1" {
		t.Errorf("NACKed %q, want /zone-1: a zone may not write another zone's ingress", got)
	}
	// Nor another zone's record of one of its services.
	svc := &v1alpha1.ZoneIngress_AvailableService{Mesh: "default", Tags: map[string]string{resource.ServiceTag: "web"}, Port: 80, Instances: 1}
	otherService := &resource.Resource{
		Meta: resource.Meta{Type: resource.ZoneIngressType, Name: resource.ZoneServiceName("zone-1", "default", svc.Tags, 80)},
		Spec: &v1alpha1.ZoneIngress{Zone: "zone-1", AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{svc}},
	}
	if got := strings.Join(z.push(resource.ZoneIngressType, "2a", otherService), ","); got != "/"+otherService.Meta.Name {
		t.Errorf("NACKed %q, want /%s: a zone may not write another zone's service records", got, otherService.Meta.Name)
	}
	mesh := &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: "evil"}, Spec: &v1alpha1.Mesh{}}
	if got := strings.Join(z.push(resource.MeshType, "3", mesh), ","); got != "/evil" {
		t.Errorf("NACKed %q, want /evil: zones may not write meshes", got)
	}

	// The stream is still up, and the rest was applied.
	if got := z.push(resource.DataplaneType, "4", storetest.Dataplane("default", "good-2", 8080)); len(got) != 0 {
		t.Errorf("a valid push after refusals was NACKed: %v", got)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "good-2.zone-9,good.zone-9")
	if status, body := call(t, "GET", g.apiURL+"/zoneingresses", ""); status != 200 || len(listNames(t, body)) != 0 {
		t.Errorf("zone ingresses after a spoofed one: %s", body)
	}
	if status, _ := call(t, "GET", g.apiURL+"/meshes/evil", ""); status != 404 {
		t.Errorf("a zone created mesh evil: %d", status)
	}
	_, metrics := call(t, "GET", g.apiURL+"/metrics", "")
	if !strings.Contains(metrics, `atoll_kds_refused_resources_total{reason="spoof",zone="zone-9"} 3`) {
		t.Errorf("spoof attempts not counted:\n%s", grepLines(metrics, "atoll_kds_refused"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
