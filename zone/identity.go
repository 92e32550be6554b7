package zone

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/atomicfile"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// globalIdentityFile, in the data dir, holds the cluster identity of the
// global this zone syncs with.
const globalIdentityFile = "global-cluster-id"

// maxClusterIDLen bounds an identity read from the global or a request.
const maxClusterIDLen = 64

// globalGuard keeps a global that lost its state (started on an empty or
// wrong etcd, or etcd prefix: a new cluster identity) from wiping what the
// zone holds. The zone adopts the identity of the first global it syncs
// with; from a global with another identity it applies no Mesh or VIP
// table change and no removal at all, until the new identity is accepted
// (POST /zone/accept-global, atollctl accept-global).
//
// Other zones' ZoneIngresses and ServiceEndpoints are the exception for
// upserts: they carry what zones connected to that global report about
// themselves now, and are applied. Their removals are refused like the
// rest: a global that lost its state has not heard from every zone yet,
// and removing them would cut traffic to zones that are fine.
type globalGuard struct {
	path    string
	address string // the global's address, for messages
	log     *slog.Logger
	// reconnect starts a new session, which reconciles the full state of
	// a global just accepted (nil when the zone runs on its own).
	reconnect func()

	mu       sync.Mutex
	accepted string // the identity synced with; "" before the first sync
	// mismatch: the last global's identity, refused, is not accepted.
	mismatch bool
	refused  string
}

// loadGlobalGuard reads the remembered identity, if any, from path.
func loadGlobalGuard(path, address string, log *slog.Logger) (*globalGuard, error) {
	g := &globalGuard{path: path, address: address, log: log}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return g, nil
	case err != nil:
		return nil, fmt.Errorf("dataDir: reading the global's identity: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if err := checkClusterID(id); err != nil {
		return nil, fmt.Errorf("dataDir: %s: %w (remove the file to adopt the identity of the next global this zone syncs with)", path, err)
	}
	g.accepted = id
	return g, nil
}

func checkClusterID(id string) error {
	if id == "" {
		return errors.New("the cluster identity is empty")
	}
	if len(id) > maxClusterIDLen {
		return fmt.Errorf("the cluster identity is %d characters long, at most %d are allowed", len(id), maxClusterIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("the cluster identity %q holds %q: only letters, digits and '-' are allowed", id, c)
		}
	}
	return nil
}

// hello checks the identity in the global's Hello before a session starts:
// the first one is adopted, a different one puts the guard in refusing mode.
func (g *globalGuard) hello(h *v1alpha1.Hello) error {
	id := h.GetClusterId()
	if id != "" {
		if err := checkClusterID(id); err != nil {
			return fmt.Errorf("the global sent an invalid cluster identity: %w", err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case id == g.accepted:
		g.mismatch = false
		return nil
	case g.accepted == "":
		if err := g.persist(id); err != nil {
			return err
		}
		g.accepted, g.mismatch = id, false
		g.log.Info("adopted the global's cluster identity", "clusterID", id)
		return nil
	}
	if !g.mismatch || g.refused != id {
		g.mismatch, g.refused = true, id
		g.log.Warn(g.problemLocked())
	}
	return nil
}

// accept adopts id, the identity of the global whose changes are refused,
// and reconnects so the new session applies that global's full state.
func (g *globalGuard) accept(id string) error {
	g.mu.Lock()
	switch {
	case !g.mismatch:
		g.mu.Unlock()
		return fmt.Errorf("%w: this zone syncs with the global it remembers (cluster identity %s)", errNothingToAccept, g.accepted)
	case g.refused == "":
		g.mu.Unlock()
		return fmt.Errorf("%w: the global sends no cluster identity; upgrade it", errNothingToAccept)
	case id != g.refused:
		g.mu.Unlock()
		return fmt.Errorf("%w: the global has cluster identity %s, not %s", errNothingToAccept, g.refused, id)
	}
	if err := g.persist(id); err != nil {
		g.mu.Unlock()
		return err
	}
	old := g.accepted
	g.accepted, g.mismatch, g.refused = id, false, ""
	g.mu.Unlock()
	g.log.Warn("accepted a new global: its state now replaces what this zone held", "clusterID", id, "previous", old)
	if g.reconnect != nil {
		g.reconnect()
	}
	return nil
}

// errNothingToAccept: accept was asked for an identity not on offer.
var errNothingToAccept = errors.New("nothing to accept")

func (g *globalGuard) persist(id string) error {
	if err := atomicfile.Write(g.path, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("dataDir: remembering the global's identity: %w", err)
	}
	return nil
}

// problemLocked says what is refused and how to accept the new global.
func (g *globalGuard) problemLocked() string {
	shown := g.refused
	if shown == "" {
		shown = "none (an older global)"
	}
	msg := fmt.Sprintf("the global at %s has cluster identity %s, not %s that this zone synced with: "+
		"it may have been started on an empty or wrong etcd (or etcd prefix). This zone keeps its meshes, VIP tables "+
		"and other zones' services, and refuses their removal and any mesh or VIP change from it", g.address, shown, g.accepted)
	if g.refused == "" {
		return msg + "; upgrade the global, or point the zone at the right one"
	}
	return msg + fmt.Sprintf(`; if this global is the right one, accept it with "atollctl accept-global %s" against this zone's API (POST /zone/accept-global)`, g.refused)
}

// Problem is why the zone refuses its global's changes, or nil.
func (g *globalGuard) Problem() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mismatch {
		return nil
	}
	return errors.New(g.problemLocked())
}

// identity returns the accepted identity and the refused one ("" if none).
func (g *globalGuard) identity() (accepted, refused string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mismatch {
		refused = g.refused
	}
	return g.accepted, refused
}

// refusal says why a change from the global is refused, or "".
func (g *globalGuard) refusal(t resource.Type, removal bool) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mismatch || !(removal || t == resource.MeshType || t == resource.VIPTableType) {
		return ""
	}
	return fmt.Sprintf("refused: this global's cluster identity %s is not %s, which this zone synced with; "+
		"accept it with \"atollctl accept-global %s\" on the zone", g.refused, g.accepted, g.refused)
}
