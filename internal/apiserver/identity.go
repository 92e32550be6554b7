package apiserver

import (
	"net/http"

	"github.com/atoll-mesh/atoll/internal/version"
)

// Kinds of control plane an Identity names.
const (
	KindGlobal = "global"
	KindZone   = "zone"
)

// IdentityPath is where a control plane says what it is. It is open to
// every caller, like /healthz: it names the kind of control plane, a zone's
// name and the build's version, nothing that opens a door (/metrics, open
// too, says more). A client learns from it whether it reached atoll at all,
// and which plane, before it has a token to send.
const IdentityPath = "/identity"

// Identity is what GET /identity answers.
type Identity struct {
	// Kind is KindGlobal or KindZone.
	Kind string `json:"kind"`
	// Zone is the zone's name; empty on the global.
	Zone    string `json:"zone,omitempty"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// RegisterIdentity adds GET /identity to mux, answering id with this
// build's version.
func RegisterIdentity(mux *http.ServeMux, id Identity) {
	id.Version, id.Commit = version.Version, version.Commit
	mux.HandleFunc("GET "+IdentityPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, id)
	})
}
