package zone

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/internal/vip"
)

func meshRes(name string) *resource.Resource {
	return &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: name}, Spec: &v1alpha1.Mesh{}}
}

func ingressOffering(zone, mesh string, services ...string) *resource.Resource {
	zi := &v1alpha1.ZoneIngress{Zone: zone}
	for _, s := range services {
		zi.AvailableServices = append(zi.AvailableServices, &v1alpha1.ZoneIngress_AvailableService{
			Mesh: mesh, Tags: map[string]string{resource.ServiceTag: s}, Instances: 1, Port: 80,
		})
	}
	return &resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone}, Spec: zi}
}

func vipTable(mesh string, entries map[string]string) *resource.Resource {
	t := &v1alpha1.VIPTable{}
	for s, a := range entries {
		t.Entries = append(t.Entries, &v1alpha1.VIPTable_Entry{Service: s, Vip: a})
	}
	return &resource.Resource{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: mesh, Name: resource.VIPTableName}, Spec: t}
}

type testResolver struct {
	*resolver
	dnsAddr string
	logs    *bytes.Buffer
}

// startResolver builds a resolver over a store holding rs, with its DNS
// server listening on loopback, and rebuilds once.
func startResolver(t *testing.T, rs ...*resource.Resource) *testResolver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := memstore.New()
	for _, r := range rs {
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	cache := store.NewCache(st, resource.MeshType, resource.ZoneIngressType, resource.VIPTableType)
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	r := newResolver(cache, netip.MustParsePrefix(vip.DefaultCIDR), "mesh", log, prometheus.NewRegistry())
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.srv = dns.NewServer(dns.Config{Addr: "127.0.0.1:0", Domain: "mesh", TTL: time.Second}, log, nil)
	done := make(chan error, 1)
	go func() { done <- r.srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for r.srv.Addr() == nil {
		select {
		case err := <-done:
			t.Fatalf("dns server: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the DNS server did not start")
		}
	}
	r.rebuild()
	return &testResolver{resolver: r, dnsAddr: r.srv.Addr().String(), logs: logs}
}

// lookup returns name's A record over UDP, or the rcode's name.
func (r *testResolver) lookup(t *testing.T, name string) string {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	resp, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(m, r.dnsAddr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(resp.Answer) == 0 {
		return mdns.RcodeToString[resp.Rcode]
	}
	return resp.Answer[0].(*mdns.A).A.String()
}

func (r *testResolver) view(mesh, service string) (vip.View, bool) {
	for _, v := range (*r.views.Load())[mesh] {
		if v.Service == service {
			return v, true
		}
	}
	return vip.View{}, false
}

// zone-1 serves backend and holds its VIP; zone-2 then offers "Backend"
// (a Dataplane stored before the naming rule): backend.mesh keeps
// answering with backend's VIP, and the conflict is listed, counted and
// logged once.
func TestANewcomerDoesNotTakeAServedName(t *testing.T) {
	r := startResolver(t, meshRes("default"),
		ingressOffering("zone-1", "default", "backend"),
		ingressOffering("zone-2", "default", "Backend"),
		// The global gave backend its entry first and none to Backend.
		vipTable("default", map[string]string{"backend": "240.0.0.10"}))
	if got := r.lookup(t, "backend.mesh"); got != "240.0.0.10" {
		t.Errorf("backend.mesh → %s, want backend's 240.0.0.10", got)
	}
	if got := r.lookup(t, "BACKEND.mesh"); got != "240.0.0.10" {
		t.Errorf("BACKEND.mesh → %s, want backend's 240.0.0.10", got)
	}
	v, ok := r.view("default", "Backend")
	if !ok || v.Conflict == nil || v.Conflict.Name != "backend" || v.Conflict.HeldBy != "backend" || v.VIP != "" {
		t.Errorf("Backend's view: %+v (conflict %+v), want a conflict over backend held by backend and no VIP", v, v.Conflict)
	}
	if _, has := r.VIPs("default")["Backend"]; has {
		t.Errorf("Backend has a VIP for xDS: %v", r.VIPs("default"))
	}
	if got := testutil.ToFloat64(r.conflicts); got != 1 {
		t.Errorf("atoll_dns_name_conflicts = %v, want 1", got)
	}
	r.built = [3]uint64{} // rebuild again: the conflict is logged once
	r.rebuild()
	if n := strings.Count(r.logs.String(), "maps to a DNS name another service holds"); n != 1 {
		t.Errorf("conflict logged %d times, want once:\n%s", n, r.logs)
	}
}

// Tables written before the rule may give both spellings a VIP: the
// valid spelling holds the name, whatever the byte order says.
func TestTheValidSpellingHoldsANameBothHaveAVIPFor(t *testing.T) {
	r := startResolver(t, meshRes("default"),
		ingressOffering("zone-2", "default", "Backend", "backend"),
		vipTable("default", map[string]string{"Backend": "240.0.0.9", "backend": "240.0.0.10"}))
	if got := r.lookup(t, "backend.mesh"); got != "240.0.0.10" {
		t.Errorf("backend.mesh → %s, want backend's 240.0.0.10 (Backend sorts first and took it before the rule)", got)
	}
}

// Without the global, the zone's proposals follow the same rule.
func TestProposalsSettleConflictsTheSameWay(t *testing.T) {
	r := startResolver(t, meshRes("default"), ingressOffering("zone-1", "default", "Backend", "backend"))
	v, _ := r.view("default", "backend")
	if !v.Proposed || v.VIP == "" {
		t.Fatalf("backend: %+v, want a proposal", v)
	}
	if got := r.lookup(t, "backend.mesh"); got != v.VIP {
		t.Errorf("backend.mesh → %s, want backend's proposal %s", got, v.VIP)
	}
	if c, _ := r.view("default", "Backend"); c.Conflict == nil {
		t.Errorf("Backend: %+v, want a conflict", c)
	}
}

// A ZoneIngress may name any mesh: services of meshes that do not exist
// get no VIP and no name.
func TestServicesOfMeshesThatDoNotExistAreIgnored(t *testing.T) {
	r := startResolver(t, meshRes("default"),
		ingressOffering("zone-1", "default", "backend"),
		ingressOffering("zone-2", "ghost", "web"))
	if got := r.lookup(t, "web.mesh"); got != "NXDOMAIN" {
		t.Errorf("web.mesh of mesh ghost → %s, want NXDOMAIN", got)
	}
	if vs := (*r.views.Load())["ghost"]; len(vs) != 0 {
		t.Errorf("views of mesh ghost: %+v", vs)
	}
	if got := r.lookup(t, "backend.mesh"); got == "NXDOMAIN" {
		t.Errorf("backend.mesh of mesh default → %s", got)
	}
}

// Meshes share the domain: a name two meshes' services map to answers
// with mesh default's, and the other keeps its VIP with the conflict shown.
func TestANameSharedByMeshesIsListedAsAConflict(t *testing.T) {
	r := startResolver(t, meshRes("default"), meshRes("other"),
		ingressOffering("zone-1", "default", "web"),
		ingressOffering("zone-2", "other", "web"),
		vipTable("default", map[string]string{"web": "240.0.0.1"}),
		vipTable("other", map[string]string{"web": "240.0.0.2"}))
	if got := r.lookup(t, "web.mesh"); got != "240.0.0.1" {
		t.Errorf("web.mesh → %s, want mesh default's 240.0.0.1", got)
	}
	v, _ := r.view("other", "web")
	if v.VIP != "240.0.0.2" || v.Conflict == nil || v.Conflict.Mesh != "default" || v.Conflict.HeldBy != "web" {
		t.Errorf("mesh other's web: %+v (conflict %+v), want its VIP and a conflict with mesh default's web", v, v.Conflict)
	}
}

// A mesh's VIPs are in one record per service, and in a legacy table
// until the global migrates it: every record of the mesh counts, and a
// service's own record wins over its legacy entry.
func TestAMeshsVIPRecordsAccumulate(t *testing.T) {
	record := func(service, addr string) *resource.Resource {
		return vip.Record("default", &v1alpha1.VIPTable_Entry{Service: service, Vip: addr})
	}
	r := startResolver(t, meshRes("default"),
		ingressOffering("zone-1", "default", "backend", "web", "api"),
		record("backend", "240.0.0.10"),
		record("web", "240.0.0.11"),
		vipTable("default", map[string]string{"backend": "240.0.0.99", "api": "240.0.0.12"}))
	for name, want := range map[string]string{"backend.mesh": "240.0.0.10", "web.mesh": "240.0.0.11", "api.mesh": "240.0.0.12"} {
		if got := r.lookup(t, name); got != want {
			t.Errorf("%s → %s, want %s", name, got, want)
		}
	}
	for _, s := range []string{"backend", "web", "api"} {
		if v, _ := r.view("default", s); v.Proposed {
			t.Errorf("%s: %+v, want the global's VIP, not a proposal", s, v)
		}
	}
}
