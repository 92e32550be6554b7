package zone

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
	"github.com/atoll-mesh/atoll/kds"
)

const (
	globalA = "11111111-aaaa-4aaa-8aaa-111111111111"
	globalB = "22222222-bbbb-4bbb-8bbb-222222222222"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func wireOf(t *testing.T, r *resource.Resource) *v1alpha1.WireResource {
	t.Helper()
	w, err := kds.ToWire(r, r.Meta.Name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mesh(name string) *resource.Resource {
	return &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: name}, Spec: &v1alpha1.Mesh{}}
}

func ingressOf(zone string) *resource.Resource {
	return &resource.Resource{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: zone},
		Spec: &v1alpha1.ZoneIngress{Zone: zone}}
}

func has(t *testing.T, st store.Store, key resource.Key) bool {
	t.Helper()
	_, err := st.Get(context.Background(), key)
	if err != nil && !store.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// A zone synced with global A, restarted and connected to a global B (one
// started on an empty etcd), keeps its meshes and other zones' ingresses,
// says why and how to accept B, and applies B's removals once accepted.
func TestZoneRefusesRemovalsFromAGlobalWithAnotherIdentityUntilAccepted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "zone.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	path := filepath.Join(dir, globalIdentityFile)
	guard, err := loadGlobalGuard(path, "global-a:5685", quiet())
	if err != nil {
		t.Fatal(err)
	}
	ep := &globalEndpoint{zone: "zone-1", store: st, guard: guard}

	// First sync: A's identity is adopted and A's state applied.
	if err := guard.hello(&v1alpha1.Hello{ClusterId: globalA}); err != nil {
		t.Fatal(err)
	}
	if refused, err := ep.Apply(ctx, resource.MeshType, []*v1alpha1.WireResource{wireOf(t, mesh("extra"))}, nil); err != nil || len(refused) > 0 {
		t.Fatalf("applying global A's mesh: %v %v", refused, err)
	}
	if refused, err := ep.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{wireOf(t, ingressOf("zone-2"))}, nil); err != nil || len(refused) > 0 {
		t.Fatalf("applying zone-2's ingress: %v %v", refused, err)
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != globalA {
		t.Fatalf("remembered identity = %q, want %s", b, globalA)
	}

	// The zone restarts and meets global B.
	guard, err = loadGlobalGuard(path, "global-b:5685", quiet())
	if err != nil {
		t.Fatal(err)
	}
	reconnects := 0
	guard.reconnect = func() { reconnects++ }
	ep.guard = guard
	if err := guard.hello(&v1alpha1.Hello{ClusterId: globalB}); err != nil {
		t.Fatal(err)
	}
	problem := guard.Problem()
	if problem == nil || !strings.Contains(problem.Error(), "atollctl accept-global "+globalB) {
		t.Fatalf("problem = %v, want one naming \"atollctl accept-global %s\"", problem, globalB)
	}
	refused, err := ep.Apply(ctx, resource.MeshType, []*v1alpha1.WireResource{wireOf(t, mesh("other"))}, []string{kds.WireKey("", "extra")})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 {
		t.Fatalf("global B's mesh change and removal: refused %v, want both refused", refused)
	}
	if !has(t, st, resource.Key{Type: resource.MeshType, Name: "extra"}) || has(t, st, resource.Key{Type: resource.MeshType, Name: "other"}) {
		t.Fatal("global B changed the zone's meshes before it was accepted")
	}
	refused, err = ep.Apply(ctx, resource.ZoneIngressType, []*v1alpha1.WireResource{wireOf(t, ingressOf("zone-3"))}, []string{kds.WireKey("", "zone-2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := refused[kds.WireKey("", "zone-2")]; !ok || len(refused) != 1 {
		t.Fatalf("refused %v, want only zone-2's removal refused (zone-3's ingress applied)", refused)
	}
	if !has(t, st, resource.Key{Type: resource.ZoneIngressType, Name: "zone-2"}) || !has(t, st, resource.Key{Type: resource.ZoneIngressType, Name: "zone-3"}) {
		t.Fatal("want zone-2's ingress kept and zone-3's applied")
	}

	// Status and acceptance over the zone's API.
	mux := http.NewServeMux()
	(&statusAPI{zone: "zone-1", guard: guard, global: "global-b:5685"}).register(mux)
	var st1 ZoneStatus
	if code := call(t, mux, http.MethodGet, "/zone", "", &st1); code != http.StatusOK || st1.GlobalClusterID != globalA || st1.RefusedClusterID != globalB || st1.GlobalProblem == "" {
		t.Fatalf("GET /zone = %d %+v, want global %s, refused %s and the problem", code, st1, globalA, globalB)
	}
	for body, want := range map[string]int{
		`{"clusterId": "` + globalA + `"}`: http.StatusConflict,   // not the one on offer
		`{"clusterId": "bad id!"}`:         http.StatusBadRequest, // not an identity
		`{"id": "x"}`:                      http.StatusBadRequest, // wrong field
		`not json`:                         http.StatusBadRequest,
	} {
		var out map[string]string
		if code := call(t, mux, http.MethodPost, "/zone/accept-global", body, &out); code != want || out["error"] == "" {
			t.Errorf("POST %s = %d %v, want %d with an error", body, code, out, want)
		}
	}
	if reconnects != 0 || guard.Problem() == nil {
		t.Fatal("a refused accept changed the zone's state")
	}
	var st2 ZoneStatus
	if code := call(t, mux, http.MethodPost, "/zone/accept-global", `{"clusterId": "`+globalB+`"}`, &st2); code != http.StatusOK || st2.GlobalClusterID != globalB || st2.GlobalProblem != "" || st2.RefusedClusterID != "" {
		t.Fatalf("accepting B = %d %+v", code, st2)
	}
	if reconnects != 1 {
		t.Fatalf("reconnects = %d, want 1 (the new session applies B's full state)", reconnects)
	}
	if refused, err := ep.Apply(ctx, resource.MeshType, nil, []string{kds.WireKey("", "extra")}); err != nil || len(refused) > 0 {
		t.Fatalf("B's removal after acceptance: %v %v", refused, err)
	}
	if has(t, st, resource.Key{Type: resource.MeshType, Name: "extra"}) {
		t.Fatal("mesh extra kept after B was accepted")
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != globalB {
		t.Fatalf("remembered identity = %q, want %s", b, globalB)
	}
	var out map[string]string
	if code := call(t, mux, http.MethodPost, "/zone/accept-global", `{"clusterId": "`+globalB+`"}`, &out); code != http.StatusConflict {
		t.Fatalf("accepting again = %d %v, want 409: nothing to accept", code, out)
	}
}

func call(t *testing.T, h http.Handler, method, path, body string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, rec.Code, rec.Body, err)
	}
	return rec.Code
}

func TestGlobalIdentityFileIsValidated(t *testing.T) {
	path := filepath.Join(t.TempDir(), globalIdentityFile)
	if err := os.WriteFile(path, []byte("not an id!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadGlobalGuard(path, "g:1", quiet())
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("err = %v, want one naming the file and what to do", err)
	}
	g, err := loadGlobalGuard(filepath.Join(t.TempDir(), globalIdentityFile), "g:1", quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := g.hello(&v1alpha1.Hello{ClusterId: strings.Repeat("a", 65)}); err == nil {
		t.Fatal("an over-long identity from the global was accepted")
	}
}

// Meeting its own global again ends the refusal; an older global that
// sends no identity is refused too once an identity is remembered.
func TestRefusalEndsWhenTheRememberedGlobalIsBack(t *testing.T) {
	g, err := loadGlobalGuard(filepath.Join(t.TempDir(), globalIdentityFile), "g:1", quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		id      string
		refused bool
	}{
		{globalA, false}, // adopted
		{globalB, true},
		{globalA, false},
		{"", true},
		{globalA, false},
	} {
		if err := g.hello(&v1alpha1.Hello{ClusterId: step.id}); err != nil {
			t.Fatal(err)
		}
		if got := g.Problem() != nil; got != step.refused {
			t.Fatalf("after a Hello with identity %q: refusing %t, want %t", step.id, got, step.refused)
		}
		if got := g.refusal(resource.MeshType, true) != ""; got != step.refused {
			t.Fatalf("after a Hello with identity %q: refusing mesh removals %t, want %t", step.id, got, step.refused)
		}
	}
}
