package apiserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
)

// countingStore counts the writes that reach the store.
type countingStore struct {
	*memstore.Store
	writes int
}

func (s *countingStore) Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	s.writes++
	return s.Store.Create(ctx, r)
}

func (s *countingStore) Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error) {
	s.writes++
	return s.Store.Update(ctx, r)
}

// TestPutOutcome checks what a PUT says it did, and that a PUT that
// changes nothing neither writes nor bumps the version, with or without
// the version a GET returned.
func TestPutOutcome(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	if err := store.EnsureMesh(context.Background(), st.Store, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apiserver.NewResources(apiserver.ResourcesConfig{Store: st, Side: resource.WrittenOnZone,
		Labels: map[string]string{resource.ZoneLabel: "zone-1", resource.OriginLabel: resource.OriginZone},
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(mux)
	const path = "/meshes/default/dataplanes/kong"

	put := func(body string, wantStatus int, want apiserver.Outcome) string {
		t.Helper()
		rec := do(mux, "PUT", path, body)
		if rec.Code != wantStatus || rec.Header().Get(apiserver.OutcomeHeader) != string(want) {
			t.Fatalf("PUT: %d %s %q, want %d %s", rec.Code, apiserver.OutcomeHeader, rec.Header().Get(apiserver.OutcomeHeader), wantStatus, want)
		}
		r, err := resource.Decode(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("PUT answered %s: %v", rec.Body, err)
		}
		return r.Meta.Version
	}
	v1 := put(kong, http.StatusCreated, apiserver.Created)
	if got := put(kong, http.StatusOK, apiserver.Unchanged); got != v1 {
		t.Errorf("unchanged PUT answered version %s, want %s", got, v1)
	}

	// What GET returns (version, times, the labels the zone sets) is
	// unchanged when sent back.
	got := do(mux, "GET", path, "").Body.String()
	if v := put(got, http.StatusOK, apiserver.Unchanged); v != v1 {
		t.Errorf("GET's answer sent back answered version %s, want %s", v, v1)
	}
	if st.writes != 1 {
		t.Errorf("%d writes reached the store, want 1 (the create)", st.writes)
	}

	changed := strings.Replace(kong, "127.0.0.1", "127.0.0.2", 1)
	v2 := put(changed, http.StatusOK, apiserver.Updated)
	if v2 == v1 {
		t.Errorf("changing PUT kept version %s", v1)
	}
	labelled := strings.Replace(changed, `"name":"kong"`, `"name":"kong","labels":{"team":"edge"}`, 1)
	if v := put(labelled, http.StatusOK, apiserver.Updated); v == v2 {
		t.Errorf("a PUT adding a label kept version %s", v2)
	}
	// The GET of v1, sent back unchanged but stale, is refused.
	if rec := do(mux, "PUT", path, got); rec.Code != http.StatusConflict {
		t.Errorf("PUT at stale version %s: %d %s, want 409", v1, rec.Code, rec.Body)
	}
}
