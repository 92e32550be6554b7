package apiserver

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// Store is what the resource API needs of a store.
type Store interface {
	store.Reader
	Create(ctx context.Context, r *resource.Resource) (*resource.Resource, error)
	Update(ctx context.Context, r *resource.Resource) (*resource.Resource, error)
	Delete(ctx context.Context, key resource.Key, version string) error
}

// ResourcesConfig configures the resource API of one control plane.
type ResourcesConfig struct {
	Store Store
	// Side is where this API runs: resource.WrittenOnGlobal or
	// resource.WrittenOnZone. Types written elsewhere are read-only here.
	Side resource.Writer
	// Labels are set on every resource written through this API,
	// overriding what the body says (e.g. atoll.io/origin, atoll.io/zone).
	Labels map[string]string
	Log    *slog.Logger
	// StoreTimeout bounds the store operations of one request;
	// DefaultStoreTimeout when zero.
	StoreTimeout time.Duration
}

// Resources serves the resource API.
type Resources struct {
	cfg ResourcesConfig
}

// NewResources returns the resource API.
func NewResources(cfg ResourcesConfig) *Resources {
	return &Resources{cfg: cfg}
}

// maxBody bounds a request body.
const maxBody = resource.MaxDocumentSize

// DefaultStoreTimeout bounds the store operations of one request of the
// resource API: a store that does not answer (etcd without a quorum, or
// unreachable) fails the request with 503 instead of holding it open.
const DefaultStoreTimeout = 10 * time.Second

// Register adds the resource routes to mux.
func (h *Resources) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /meshes/{mesh}/{plural}", h.bounded(h.list))
	mux.HandleFunc("GET /meshes/{mesh}/{plural}/{name}", h.bounded(h.get))
	mux.HandleFunc("PUT /meshes/{mesh}/{plural}/{name}", h.bounded(h.put))
	mux.HandleFunc("DELETE /meshes/{mesh}/{plural}/{name}", h.bounded(h.delete))
	mux.HandleFunc("GET /{plural}", h.bounded(h.list))
	mux.HandleFunc("GET /{plural}/{name}", h.bounded(h.get))
	mux.HandleFunc("PUT /{plural}/{name}", h.bounded(h.put))
	mux.HandleFunc("DELETE /{plural}/{name}", h.bounded(h.delete))
}

// bounded runs handler with its request's context ending the store
// timeout from now; a store operation it cuts short is answered 503.
func (h *Resources) bounded(handler http.HandlerFunc) http.HandlerFunc {
	timeout := cmp.Or(h.cfg.StoreTimeout, DefaultStoreTimeout)
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		handler(w, r.WithContext(ctx))
	}
}

// target resolves the type and key a request is about.
func (h *Resources) target(r *http.Request) (*resource.Descriptor, resource.Key, error) {
	plural := r.PathValue("plural")
	d, ok := resource.Types.ByName(plural)
	if !ok || d.Plural != plural {
		return nil, resource.Key{}, notFound(fmt.Sprintf("no resource type is served at %q: see the README for the API", r.URL.Path))
	}
	mesh := r.PathValue("mesh")
	if (d.Scope == resource.ScopeMesh) != (mesh != "") {
		if d.Scope == resource.ScopeMesh {
			return nil, resource.Key{}, notFound(fmt.Sprintf("%s belong to a mesh: use /meshes/{mesh}/%s", d.Plural, d.Plural))
		}
		return nil, resource.Key{}, notFound(fmt.Sprintf("%s do not belong to a mesh: use /%s", d.Plural, d.Plural))
	}
	return d, resource.Key{Type: d.Type, Mesh: mesh, Name: r.PathValue("name")}, nil
}

func (h *Resources) list(w http.ResponseWriter, r *http.Request) {
	d, key, err := h.target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if key.Mesh != "" {
		if err := h.meshExists(r.Context(), key.Mesh); err != nil {
			writeError(w, err)
			return
		}
	}
	items, err := h.cfg.Store.List(r.Context(), d.Type, key.Mesh)
	if err != nil {
		writeError(w, err)
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"total":%d,"items":[`, len(items))
	for i, item := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		js, err := resource.EncodeJSON(item)
		if err != nil {
			writeError(w, err)
			return
		}
		b.Write(js)
	}
	b.WriteString("]}")
	writeRawJSON(w, http.StatusOK, b.Bytes())
}

func (h *Resources) get(w http.ResponseWriter, r *http.Request) {
	_, key, err := h.target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := h.cfg.Store.Get(r.Context(), key)
	if err != nil {
		writeError(w, err)
		return
	}
	h.writeResource(w, http.StatusOK, res)
}

func (h *Resources) writeResource(w http.ResponseWriter, status int, res *resource.Resource) {
	js, err := resource.EncodeJSON(res)
	if err != nil {
		writeError(w, err)
		return
	}
	writeRawJSON(w, status, js)
}

// writable says why users may not write d here, or nil.
func (h *Resources) writable(d *resource.Descriptor) error {
	if d.Writer == h.cfg.Side {
		return nil
	}
	switch d.Writer {
	case resource.WrittenOnGlobal:
		return methodNotAllowed(fmt.Sprintf("%s are managed on the global control plane: send this to the global's API", d.Plural))
	case resource.WrittenOnZone:
		return methodNotAllowed(fmt.Sprintf("%s are registered on zone control planes: send this to the API of the zone the workload runs in", d.Plural))
	default:
		return methodNotAllowed(fmt.Sprintf("%s are computed by atoll and cannot be written", d.Plural))
	}
}

func (h *Resources) meshExists(ctx context.Context, mesh string) error {
	_, err := h.cfg.Store.Get(ctx, resource.Key{Type: resource.MeshType, Name: mesh})
	if store.IsNotFound(err) {
		return notFound(fmt.Sprintf("mesh %q does not exist: create it on the global control plane first", mesh))
	}
	return err
}

func (h *Resources) put(w http.ResponseWriter, r *http.Request) {
	d, key, err := h.target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := h.writable(d); err != nil {
		writeError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := resource.Decode(body)
	if err != nil {
		writeError(w, badRequest(err.Error()))
		return
	}
	if err := checkBodyMatchesURL(res, key); err != nil {
		writeError(w, err)
		return
	}
	res.Meta.Mesh, res.Meta.Name = key.Mesh, key.Name
	// Times are the store's to set; what a client sends back is ignored.
	res.Meta.CreationTime, res.Meta.ModificationTime = time.Time{}, time.Time{}
	if len(h.cfg.Labels) > 0 && res.Meta.Labels == nil {
		res.Meta.Labels = map[string]string{}
	}
	for k, v := range h.cfg.Labels {
		res.Meta.Labels[k] = v
	}
	if err := resource.Validate(res); err != nil {
		writeError(w, err)
		return
	}
	resource.Normalize(res)
	if d.Scope == resource.ScopeMesh {
		if err := h.meshExists(r.Context(), key.Mesh); err != nil {
			writeError(w, fieldError("mesh", err.Error()))
			return
		}
	}
	stored, outcome, err := h.upsert(r.Context(), res)
	if err != nil {
		writeError(w, err)
		return
	}
	status := http.StatusOK
	switch outcome {
	case Created:
		status = http.StatusCreated
		h.cfg.Log.Info("resource created", "key", key.String(), "version", stored.Meta.Version)
	case Updated:
		h.cfg.Log.Info("resource updated", "key", key.String(), "version", stored.Meta.Version)
	default:
		h.cfg.Log.Debug("resource unchanged", "key", key.String(), "version", stored.Meta.Version)
	}
	w.Header().Set(OutcomeHeader, string(outcome))
	h.writeResource(w, status, stored)
}

// OutcomeHeader is the header of a PUT's answer that says what the PUT
// did: Created (201), Updated or Unchanged (200).
const OutcomeHeader = "Atoll-Outcome"

// Outcome is what a PUT did, in OutcomeHeader.
type Outcome string

const (
	Created Outcome = "created"
	Updated Outcome = "updated"
	// Unchanged: the body's spec and labels equal what is stored, so
	// nothing was written and the version stays.
	Unchanged Outcome = "unchanged"
)

// upsert creates res, or updates it: at res's version when the body gave
// one, else at the version just read. A res whose spec and labels equal
// the stored ones (at its version, when it names one) is not written.
func (h *Resources) upsert(ctx context.Context, res *resource.Resource) (*resource.Resource, Outcome, error) {
	cur, err := h.cfg.Store.Get(ctx, res.Key())
	if store.IsNotFound(err) {
		if res.Meta.Version != "" {
			return nil, "", conflict(fmt.Sprintf("%s does not exist, but the body names version %q: remove version to create it", res.Key(), res.Meta.Version))
		}
		stored, err := h.cfg.Store.Create(ctx, res)
		return stored, Created, err
	}
	if err != nil {
		return nil, "", err
	}
	sameVersion := res.Meta.Version == "" || res.Meta.Version == cur.Meta.Version
	if sameVersion && proto.Equal(cur.Spec, res.Spec) && maps.Equal(cur.Meta.Labels, res.Meta.Labels) {
		return cur, Unchanged, nil // no write, no new version
	}
	if res.Meta.Version == "" {
		res.Meta.Version = cur.Meta.Version
	}
	stored, err := h.cfg.Store.Update(ctx, res)
	if store.IsNotFound(err) {
		return nil, "", conflict(fmt.Sprintf("%s was deleted meanwhile: apply it again to create it", res.Key()))
	}
	return stored, Updated, err
}

func checkBodyMatchesURL(res *resource.Resource, key resource.Key) error {
	if res.Meta.Type != key.Type {
		return fieldError("type", fmt.Sprintf("the body is a %s but the URL is for %s", res.Meta.Type, key.Type))
	}
	if res.Meta.Name != "" && res.Meta.Name != key.Name {
		return fieldError("name", fmt.Sprintf("the body names %q but the URL names %q", res.Meta.Name, key.Name))
	}
	if res.Meta.Mesh != "" && res.Meta.Mesh != key.Mesh {
		if key.Mesh == "" {
			return fieldError("mesh", fmt.Sprintf("must be empty: %s does not belong to a mesh", key.Type))
		}
		return fieldError("mesh", fmt.Sprintf("the body names mesh %q but the URL names %q", res.Meta.Mesh, key.Mesh))
	}
	return nil
}

func (h *Resources) delete(w http.ResponseWriter, r *http.Request) {
	d, key, err := h.target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := h.writable(d); err != nil {
		writeError(w, err)
		return
	}
	if d.Type == resource.MeshType {
		if err := h.meshIsEmpty(r.Context(), key.Name); err != nil {
			writeError(w, err)
			return
		}
	}
	if err := h.cfg.Store.Delete(r.Context(), key, r.URL.Query().Get("version")); err != nil {
		writeError(w, err)
		return
	}
	h.cfg.Log.Info("resource deleted", "key", key.String())
	if d.Type == resource.MeshType {
		h.deleteMeshState(r.Context(), key.Name)
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// meshIsEmpty refuses to delete a mesh that still has resources users
// wrote (its Dataplanes, through their zones), which would otherwise be
// orphaned. What atoll derives for the mesh (its VIP table) goes with it.
func (h *Resources) meshIsEmpty(ctx context.Context, mesh string) error {
	var left []string
	for _, d := range resource.Types.All() {
		if d.Scope != resource.ScopeMesh || d.Writer == resource.WrittenBySystem {
			continue
		}
		items, err := h.cfg.Store.List(ctx, d.Type, mesh)
		if err != nil {
			return err
		}
		if len(items) > 0 {
			left = append(left, fmt.Sprintf("%d %s", len(items), d.Plural))
		}
	}
	if len(left) > 0 {
		return conflict(fmt.Sprintf("mesh %q still has %s: delete them first", mesh, strings.Join(left, ", ")))
	}
	return nil
}

// deleteMeshState deletes what atoll derived for a deleted mesh. What fails
// here is left to its owner (the VIP allocator removes tables of meshes
// that no longer exist), so the mesh's deletion stands.
func (h *Resources) deleteMeshState(ctx context.Context, mesh string) {
	for _, d := range resource.Types.All() {
		if d.Scope != resource.ScopeMesh || d.Writer != resource.WrittenBySystem {
			continue
		}
		items, err := h.cfg.Store.List(ctx, d.Type, mesh)
		if err != nil {
			h.cfg.Log.Warn("listing a deleted mesh's resources failed; they are removed later", "mesh", mesh, "type", d.Type, "error", err)
			continue
		}
		for _, r := range items {
			if err := h.cfg.Store.Delete(ctx, r.Key(), ""); err != nil && !store.IsNotFound(err) {
				h.cfg.Log.Warn("deleting a deleted mesh's resource failed; it is removed later", "key", r.Key().String(), "error", err)
				continue
			}
			h.cfg.Log.Info("resource deleted with its mesh", "key", r.Key().String())
		}
	}
}
