package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

func newZoneAPI(t testing.TB) (http.Handler, *memstore.Store) {
	st := memstore.New()
	if err := store.EnsureMesh(context.Background(), st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apiserver.NewResources(apiserver.ResourcesConfig{
		Store:  st,
		Side:   resource.WrittenOnZone,
		Labels: map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Register(mux)
	return mux, st
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

// snapshot is every stored key with its version.
func snapshot(t testing.TB, st store.Reader) map[resource.Key]string {
	out := map[resource.Key]string{}
	for _, d := range resource.Types.All() {
		items, err := st.List(context.Background(), d.Type, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range items {
			out[r.Key()] = r.Meta.Version
		}
	}
	return out
}

const kong = `{"type":"Dataplane","mesh":"default","name":"kong","networking":{"address":"127.0.0.1","gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}`

func TestPutStatuses(t *testing.T) {
	h, _ := newZoneAPI(t)
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"create", "PUT", "/meshes/default/dataplanes/kong", kong, 201},
		{"unchanged", "PUT", "/meshes/default/dataplanes/kong", kong, 200},
		{"YAML body", "PUT", "/meshes/default/dataplanes/kong", "type: Dataplane\nnetworking:\n  address: 127.0.0.2\n  gateway: {type: DELEGATED, tags: {atoll.io/service: kong}}\n", 200},
		{"version of a missing resource", "PUT", "/meshes/default/dataplanes/new", strings.Replace(kong, `"name":"kong"`, `"version":"7"`, 1), 409},
		{"mesh-scoped type without mesh", "GET", "/dataplanes", "", 404},
		{"global-scoped type under a mesh", "GET", "/meshes/default/zones", "", 404},
		{"list in a missing mesh", "GET", "/meshes/nope/dataplanes", "", 404},
		{"read-only type", "PUT", "/zoneingresses/zone-1", `{"type":"ZoneIngress","zone":"zone-1"}`, 405},
		{"empty body", "PUT", "/meshes/default/dataplanes/kong", "", 400},
		{"array body", "PUT", "/meshes/default/dataplanes/kong", "[1,2]", 400},
		{"delete mesh with dataplanes", "DELETE", "/meshes/default", "", 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(h, c.method, c.path, c.body)
			if rec.Code != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.status)
			}
			if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"error":`) {
				t.Errorf("error without a JSON error body: %s", rec.Body)
			}
		})
	}
}

func TestGlobalRefusesToDeleteANonEmptyMesh(t *testing.T) {
	st := memstore.New()
	ctx := context.Background()
	if err := store.EnsureMesh(ctx, st, "default", resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	dp, err := resource.Decode([]byte(kong))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, dp); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apiserver.NewResources(apiserver.ResourcesConfig{Store: st, Side: resource.WrittenOnGlobal,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(mux)
	rec := do(mux, "DELETE", "/meshes/default", "")
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "1 dataplanes") {
		t.Fatalf("DELETE non-empty mesh: %d %s, want 409 naming what is left", rec.Code, rec.Body)
	}
	if _, err := st.Get(ctx, resource.Key{Type: resource.MeshType, Name: "default"}); err != nil {
		t.Fatalf("mesh gone after a refused delete: %v", err)
	}
}

// FuzzPut sends arbitrary bodies: the API never fails with 5xx, and a
// refused request leaves the store exactly as it was.
func FuzzPut(f *testing.F) {
	for _, seed := range []string{
		kong, "", "{}", "null", "[]", `{"type":"Dataplane"}`, `{"type":"Mesh","name":"kong"}`,
		`{"type":"Dataplane","networking":{"address":"::1","inbound":[{"port":1,"tags":{"atoll.io/service":"a"}}]}}`,
		"type: Dataplane\nnetworking: {address: 1.2.3.4, inbound: [{port: 65536}]}", `{"type":"Dataplane","version":"x"}`,
		`{"type":"Dataplane","labels":{"a/b/c":"d"},"networking":{"address":"h"}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h, st := newZoneAPI(t)
		if rec := do(h, "PUT", "/meshes/default/dataplanes/kong", kong); rec.Code != 201 {
			t.Fatalf("seed kong: %d", rec.Code)
		}
		before := snapshot(t, st)
		rec := do(h, "PUT", "/meshes/default/dataplanes/kong", body)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			after := snapshot(t, st)
			if len(after) != len(before) {
				t.Fatalf("refused body %q changed the store: %v -> %v", body, before, after)
			}
			for k, v := range before {
				if after[k] != v {
					t.Fatalf("refused body %q changed %s: %s -> %s", body, k, v, after[k])
				}
			}
		}
	})
}

// stuckStore is a store whose writes never return until their context
// ends, as etcd without a quorum.
type stuckStore struct{ *memstore.Store }

func (s stuckStore) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s stuckStore) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A store that does not answer fails the request with 503 and what to do,
// after the store timeout, instead of holding it open.
func TestStuckStoreAnswers503(t *testing.T) {
	st := memstore.New()
	if err := store.EnsureMesh(context.Background(), st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apiserver.NewResources(apiserver.ResourcesConfig{
		Store: stuckStore{st}, Side: resource.WrittenOnGlobal, StoreTimeout: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}).Register(mux)
	rec := do(mux, "PUT", "/meshes/payments", `{"type":"Mesh"}`)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "the store did not answer in time") ||
		!strings.Contains(rec.Body.String(), "read the resource back before you retry") {
		t.Errorf("PUT with a stuck store: %d %s", rec.Code, rec.Body)
	}
}
