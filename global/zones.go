package global

import (
	"net/http"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
)

// ZoneView is what GET /zones returns per zone: the Zone, its connection
// state from its ZoneInsight, and what it has synced.
type ZoneView struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Online  bool   `json:"online"`
	// Status is Disabled (whatever its connection), else Online or Offline.
	Status     string     `json:"status"`
	LastSeen   *time.Time `json:"lastSeen"`
	Connected  *time.Time `json:"connectTime,omitempty"`
	Global     string     `json:"globalInstance,omitempty"`
	Dataplanes int        `json:"dataplanes"`
	// SyncLagMs is how long the oldest unacknowledged push had waited.
	SyncLagMs int64                    `json:"syncLagMs"`
	Stats     map[string]ZoneTypeStats `json:"stats,omitempty"`
}

// ZoneTypeStats is, in a ZoneView, what the global sent a zone of one type
// and what the zone acknowledged, with camelCase keys like every API's.
type ZoneTypeStats struct {
	Sent             uint64 `json:"sent"`
	Acked            uint64 `json:"acked"`
	Nacked           uint64 `json:"nacked"`
	Received         uint64 `json:"received"`
	LastAckedVersion string `json:"lastAckedVersion,omitempty"`
}

func zoneTypeStats(in map[string]*v1alpha1.KDSSubscription_TypeStats) map[string]ZoneTypeStats {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]ZoneTypeStats, len(in))
	for t, s := range in {
		out[t] = ZoneTypeStats{Sent: s.GetSent(), Acked: s.GetAcked(), Nacked: s.GetNacked(), Received: s.GetReceived(), LastAckedVersion: s.GetLastAckedVersion()}
	}
	return out
}

type zonesAPI struct {
	store        store.Reader
	offlineAfter time.Duration
}

func (a *zonesAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /zones", a.list)
	mux.HandleFunc("GET /zones/{name}", a.get)
}

func (a *zonesAPI) views(r *http.Request) ([]ZoneView, error) {
	ctx := r.Context()
	zones, err := a.store.List(ctx, resource.ZoneType, "")
	if err != nil {
		return nil, err
	}
	insights, err := a.store.List(ctx, resource.ZoneInsightType, "")
	if err != nil {
		return nil, err
	}
	dps, err := a.store.List(ctx, resource.DataplaneType, "")
	if err != nil {
		return nil, err
	}
	byZone := map[string]*v1alpha1.ZoneInsight{}
	for _, i := range insights {
		byZone[i.Meta.Name] = i.Spec.(*v1alpha1.ZoneInsight)
	}
	counts := map[string]int{}
	for _, dp := range dps {
		counts[dp.Meta.Labels[resource.ZoneLabel]]++
	}
	out := make([]ZoneView, 0, len(zones))
	for _, z := range zones {
		en := z.Spec.(*v1alpha1.Zone).Enabled
		v := ZoneView{Name: z.Meta.Name, Enabled: en == nil || *en, Dataplanes: counts[z.Meta.Name]}
		if subs := byZone[z.Meta.Name].GetSubscriptions(); len(subs) > 0 {
			s := subs[0]
			seen := s.GetLastSeen().AsTime()
			connected := s.GetConnectTime().AsTime()
			v.LastSeen, v.Connected = &seen, &connected
			v.Global = s.GetGlobalInstanceId()
			v.Online = s.GetDisconnectTime() == nil && time.Since(seen) < a.offlineAfter
			v.SyncLagMs = s.GetSyncLagMs()
			v.Stats = zoneTypeStats(s.GetStats())
		}
		v.Status = zoneStatus(v.Enabled, v.Online)
		out = append(out, v)
	}
	return out, nil
}

// The values of ZoneView.Status.
const (
	ZoneOnline   = "Online"
	ZoneOffline  = "Offline"
	ZoneDisabled = "Disabled"
)

// zoneStatus is one word for a zone: Disabled when an operator disabled it
// (it may still be connected: the global withdraws its services from the
// other zones), else Online or Offline.
func zoneStatus(enabled, online bool) string {
	switch {
	case !enabled:
		return ZoneDisabled
	case online:
		return ZoneOnline
	}
	return ZoneOffline
}

func (a *zonesAPI) list(w http.ResponseWriter, r *http.Request) {
	views, err := a.views(r)
	if err != nil {
		apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	apiserver.WriteJSON(w, http.StatusOK, map[string]any{"total": len(views), "items": views})
}

func (a *zonesAPI) get(w http.ResponseWriter, r *http.Request) {
	views, err := a.views(r)
	if err != nil {
		apiserver.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	for _, v := range views {
		if v.Name == r.PathValue("name") {
			apiserver.WriteJSON(w, http.StatusOK, v)
			return
		}
	}
	apiserver.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "zone " + r.PathValue("name") + " is not known: it appears when it first connects"})
}
