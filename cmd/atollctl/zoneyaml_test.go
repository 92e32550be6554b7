package main

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// TestZonesYAML turns the global's zone views into Zone resources that
// apply -f reads back as the zones' settings.
func TestZonesYAML(t *testing.T) {
	list := `{"total":2,"items":[
 {"name":"zone-1","enabled":true,"online":true,"lastSeen":"2026-01-02T15:04:05Z","dataplanes":3,"syncLagMs":0,"stats":{"Dataplane":{"sent":3,"acked":3}}},
 {"name":"zone-2","enabled":false,"online":false,"lastSeen":null,"dataplanes":0,"syncLagMs":0}]}`
	var out bytes.Buffer
	if err := zonesYAML(&out, []byte(list)); err != nil {
		t.Fatal(err)
	}
	want := `type: Zone
name: zone-1
status:
  online: true
  lastSeen: "2026-01-02T15:04:05Z"
  dataplanes: 3
  syncLagMs: 0
  stats:
    Dataplane:
      sent: 3
      acked: 3
---
type: Zone
name: zone-2
enabled: false
status:
  online: false
  dataplanes: 0
  syncLagMs: 0
`
	if out.String() != want {
		t.Errorf("zonesYAML:\n%s\nwant:\n%s", out.String(), want)
	}
	rs, err := resource.DecodeAll(out.Bytes())
	if err != nil {
		t.Fatalf("apply would refuse it: %v", err)
	}
	wantSpecs := []*v1alpha1.Zone{{}, {Enabled: proto.Bool(false)}}
	for i, r := range rs {
		if r.Meta.Type != resource.ZoneType || !proto.Equal(r.Spec, wantSpecs[i]) {
			t.Errorf("document %d read back as %s %v, want Zone %v", i+1, r.Meta.Type, r.Spec, wantSpecs[i])
		}
	}

	if err := zonesYAML(&out, []byte(`{"error":"nope"}`)); err == nil {
		t.Error("zonesYAML accepted an answer that is not a zone")
	}
}
