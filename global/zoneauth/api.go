package zoneauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Register adds the token endpoints to mux. They change who may sync, so
// they sit behind the API's authentication like every other write:
//
//	POST   /zones/{name}/tokens     {"validFor": "8760h"} → a token for the zone
//	DELETE /zones/{name}/tokens     revoke every token issued for it until now
//	GET    /zone-token-keys         the signing keys (no secrets)
//	POST   /zone-token-keys         rotate: a new key signs from now on
//	DELETE /zone-token-keys/{id}    retire a key that no longer signs
func (a *Authority) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /zones/{name}/tokens", a.issueHandler)
	mux.HandleFunc("DELETE /zones/{name}/tokens", a.revokeHandler)
	mux.HandleFunc("GET /zone-token-keys", a.keysHandler)
	mux.HandleFunc("POST /zone-token-keys", a.rotateHandler)
	mux.HandleFunc("DELETE /zone-token-keys/{id}", a.retireHandler)
}

// IssueRequest is the body of POST /zones/{name}/tokens (it may be empty).
type IssueRequest struct {
	// ValidFor is a Go duration, e.g. "720h"; empty means a year.
	ValidFor string `json:"validFor"`
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	apiserver.WriteJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func zoneArg(w http.ResponseWriter, r *http.Request) (string, bool) {
	zone := r.PathValue("name")
	if msg := resource.CheckZoneName(zone); msg != "" {
		fail(w, http.StatusBadRequest, "zone name %s", msg)
		return "", false
	}
	return zone, true
}

func (a *Authority) issueHandler(w http.ResponseWriter, r *http.Request) {
	zone, ok := zoneArg(w, r)
	if !ok {
		return
	}
	var req IssueRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "the request body is over 4 KiB: send {\"validFor\": \"720h\"} or nothing")
		return
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, "the request body is not {\"validFor\": DURATION}: %v", err)
			return
		}
	}
	validFor := DefaultValidity
	if req.ValidFor != "" {
		if validFor, err = time.ParseDuration(req.ValidFor); err != nil {
			fail(w, http.StatusBadRequest, "validFor %q is not a duration: use e.g. 720h or 30m", req.ValidFor)
			return
		}
	}
	if validFor < MinValidity || validFor > MaxValidity {
		fail(w, http.StatusBadRequest, "validFor %s is out of range: use %s to %s", validFor, MinValidity, MaxValidity)
		return
	}
	issued, err := a.Issue(r.Context(), zone, validFor)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "issuing a token for zone %s: %v", zone, err)
		return
	}
	a.cfg.Log.Info("zone token issued", "zone", zone, "key", issued.KeyID, "expires", issued.Expires)
	apiserver.WriteJSON(w, http.StatusCreated, issued)
}

func (a *Authority) revokeHandler(w http.ResponseWriter, r *http.Request) {
	zone, ok := zoneArg(w, r)
	if !ok {
		return
	}
	out, err := a.Revoke(r.Context(), zone)
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "revoking zone %s's tokens: %v", zone, err)
		return
	}
	a.cfg.Log.Info("zone tokens revoked", "zone", zone, "generation", out.Generation)
	apiserver.WriteJSON(w, http.StatusOK, out)
}

func (a *Authority) keysHandler(w http.ResponseWriter, r *http.Request) {
	keys, err := a.Keys(r.Context())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(keys), "items": keys})
}

func (a *Authority) rotateHandler(w http.ResponseWriter, r *http.Request) {
	k, err := a.RotateKey(r.Context())
	if err != nil {
		fail(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	apiserver.WriteJSON(w, http.StatusCreated, k)
}

func (a *Authority) retireHandler(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == "" || len(id) > 64 {
		fail(w, http.StatusBadRequest, "key id %q: use an id from GET /zone-token-keys", id)
		return
	}
	err := a.RetireKey(r.Context(), id)
	switch {
	case errors.Is(err, ErrSigningKey):
		fail(w, http.StatusConflict, "%v", err)
	case errors.Is(err, ErrNoKey):
		fail(w, http.StatusNotFound, "%v: see GET /zone-token-keys", err)
	case err != nil:
		fail(w, http.StatusServiceUnavailable, "%v", err)
	default:
		apiserver.WriteJSON(w, http.StatusOK, map[string]string{"retired": id})
	}
}
