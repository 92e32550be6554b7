package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// The global answers GET /zones with a view of each zone: its Zone
// resource's one setting (enabled) beside its connection state. As YAML,
// each zone is printed as the Zone resource apply takes, the state under
// status (read-only: apply ignores it), so that
// atollctl get zone NAME -o yaml | atollctl apply -f - round-trips.

// zoneStatusView is the state part of a zone view.
type zoneStatusView struct {
	Online         bool            `json:"online"`
	LastSeen       *time.Time      `json:"lastSeen,omitempty"`
	ConnectTime    *time.Time      `json:"connectTime,omitempty"`
	GlobalInstance string          `json:"globalInstance,omitempty"`
	Dataplanes     int             `json:"dataplanes"`
	SyncLagMs      int64           `json:"syncLagMs"`
	Stats          json.RawMessage `json:"stats,omitempty"`
}

// zoneDocument is a zone view as a Zone resource in the file format.
type zoneDocument struct {
	Type resource.Type `json:"type"`
	Name string        `json:"name"`
	// Enabled is written only when false: true is what its absence means
	// (the API stores it so), and a document read back is unchanged.
	Enabled *bool          `json:"enabled,omitempty"`
	Status  zoneStatusView `json:"status"`
}

// zonesYAML writes the zone view(s) in data, one item or a list, as Zone
// resources separated by "---".
func zonesYAML(w io.Writer, data []byte) error {
	type item struct {
		Name    string `json:"name"`
		Enabled bool   `json:"enabled"`
		zoneStatusView
	}
	var list struct {
		Items []item `json:"items"`
	}
	var items []item
	if err := json.Unmarshal(data, &list); err == nil && list.Items != nil {
		items = list.Items
	} else {
		var one item
		if err := json.Unmarshal(data, &one); err != nil || one.Name == "" {
			return fmt.Errorf("the API answered with something that is not a zone (is --api-url the global's?)")
		}
		items = []item{one}
	}
	for i, it := range items {
		doc := zoneDocument{Type: resource.ZoneType, Name: it.Name, Status: it.zoneStatusView}
		if !it.Enabled {
			doc.Enabled = &it.Enabled
		}
		js, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		y, err := resource.JSONToYAML(js)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}
