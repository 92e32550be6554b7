package zone

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/kds"
)

// ServiceView is one service this zone can reach.
type ServiceView struct {
	Name string `json:"name"`
	// Zones maps each zone the service runs in to its healthy instances.
	Zones map[string]uint32 `json:"zones"`
	// Local is true when this zone has instances.
	Local     bool   `json:"local"`
	Instances uint32 `json:"instances"`
	// Reachable is true when this zone's proxies can reach some instance;
	// Reach says, per zone in Zones, how or why not (reach.go).
	Reachable bool              `json:"reachable"`
	Reach     map[string]string `json:"reach"`
}

type statusAPI struct {
	zone   string
	cache  *store.Cache // meshes and ZoneIngresses
	client *kds.Client  // nil when the zone runs on its own
	global string
	guard  *globalGuard
	// election is the zone's (nil in tests that need none).
	election election
}

func (a *statusAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /meshes/{mesh}/services", a.services)
	mux.HandleFunc("GET /meshes/{mesh}/services/{name}", a.services)
	mux.HandleFunc("GET /zone", a.status)
	mux.HandleFunc("POST /zone/accept-global", a.acceptGlobal)
}

// services lists every service reachable from this zone, from its own
// ZoneIngress and those of the other zones.
func (a *statusAPI) services(w http.ResponseWriter, r *http.Request) {
	mesh := r.PathValue("mesh")
	m, err := a.cache.Get(resource.Key{Type: resource.MeshType, Name: mesh})
	if err != nil {
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "mesh " + mesh + " does not exist"})
		return
	}
	byName := map[string]*ServiceView{}
	for _, zi := range a.cache.List(resource.ZoneIngressType, "") {
		spec := zi.Spec.(*v1alpha1.ZoneIngress)
		for _, s := range spec.GetAvailableServices() {
			if s.GetMesh() != mesh {
				continue
			}
			name := s.GetTags()[resource.ServiceTag]
			v := byName[name]
			if v == nil {
				v = &ServiceView{Name: name, Zones: map[string]uint32{}}
				byName[name] = v
			}
			v.Zones[spec.GetZone()] += s.GetInstances()
			v.Instances += s.GetInstances()
			if spec.GetZone() == a.zone {
				v.Local = true
			}
		}
	}
	reach := newReachability(a.zone, m.Spec.(*v1alpha1.Mesh), a.cache.List(resource.ZoneIngressType, ""), a.cache.List(resource.ServiceEndpointsType, mesh))
	items := make([]*ServiceView, 0, len(byName))
	for _, v := range byName {
		reach.fill(v)
		items = append(items, v)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	if name := r.PathValue("name"); name != "" {
		if v := byName[name]; v != nil {
			apiserver.WriteJSON(w, http.StatusOK, v)
			return
		}
		apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "service " + name + " is not reachable from zone " + a.zone + " in mesh " + mesh})
		return
	}
	apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(items), "items": items})
}

// ZoneStatus is the zone's own view of its sync with the global.
type ZoneStatus struct {
	Zone          string `json:"zone"`
	GlobalAddress string `json:"globalAddress,omitempty"`
	Connected     bool   `json:"connected"`
	// ConnectedTo is the address of the global replica the zone is
	// connected to (one of GlobalAddress's, resolved).
	ConnectedTo string `json:"connectedTo,omitempty"`
	Since       string `json:"since,omitempty"`
	LastError   string `json:"lastError,omitempty"`
	// CredentialsRefused is set while the global refuses the zone's token.
	CredentialsRefused bool                     `json:"credentialsRefused,omitempty"`
	SyncLagMs          int64                    `json:"syncLagMs"`
	Stats              map[string]kds.TypeStats `json:"stats,omitempty"`
	// GlobalClusterID is the identity of the global this zone syncs with.
	GlobalClusterID string `json:"globalClusterId,omitempty"`
	// RefusedClusterID is set while the zone is connected to a global with
	// another identity, whose removals it refuses; GlobalProblem says why
	// and how to accept it.
	RefusedClusterID string `json:"refusedClusterId,omitempty"`
	GlobalProblem    string `json:"globalProblem,omitempty"`
	// Leader is set in modes with several replicas (kubernetes): whether
	// this one leads, and which does. Only the leader is connected.
	Leader *LeaderStatus `json:"leader,omitempty"`
}

func (a *statusAPI) status(w http.ResponseWriter, r *http.Request) {
	st := ZoneStatus{Zone: a.zone, GlobalAddress: a.global, Leader: leaderStatus(a.election)}
	st.GlobalClusterID, st.RefusedClusterID = a.guard.identity()
	if err := a.guard.Problem(); err != nil {
		st.GlobalProblem = err.Error()
	}
	if a.client != nil {
		s := a.client.Status()
		st.Connected, st.ConnectedTo, st.LastError, st.CredentialsRefused = s.Connected, s.Peer, s.LastError, s.Refused
		st.Since = s.Since.UTC().Format(time.RFC3339Nano)
		if s.Session != nil {
			st.SyncLagMs = s.Session.SyncLag.Milliseconds()
			st.Stats = map[string]kds.TypeStats{}
			for t, ts := range s.Session.Types {
				st.Stats[string(t)] = ts
			}
		}
	}
	apiserver.WriteJSON(w, http.StatusOK, st)
}

// AcceptGlobal is the body of POST /zone/accept-global.
type AcceptGlobal struct {
	// ClusterID must be the identity the zone reports as refused, so an
	// operator accepts the global they looked at and no other.
	ClusterID string `json:"clusterId"`
}

// acceptGlobal adopts the identity of the global whose changes the zone
// refuses; the zone then reconnects and applies that global's state.
func (a *statusAPI) acceptGlobal(w http.ResponseWriter, r *http.Request) {
	var body AcceptGlobal
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		apiserver.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": `the body must be {"clusterId": "ID"} with the identity GET /zone reports as refusedClusterId: ` + err.Error()})
		return
	}
	if err := checkClusterID(body.ClusterID); err != nil {
		apiserver.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "clusterId: " + err.Error()})
		return
	}
	if err := a.guard.accept(body.ClusterID); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errNothingToAccept) {
			code = http.StatusConflict
		}
		apiserver.WriteJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	a.status(w, r)
}
