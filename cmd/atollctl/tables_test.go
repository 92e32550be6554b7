package main

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// fixClock measures ages from fixedNow for the test.
func fixClock(t *testing.T) {
	t.Helper()
	clock = func() time.Time { return fixedNow }
	t.Cleanup(func() { clock = time.Now })
}

// The view tables, fed from what the APIs answer (testdata/*.json).
func TestViewTablesGolden(t *testing.T) {
	fixClock(t)
	for _, c := range []struct {
		name  string
		table func(io.Writer, []byte) error
	}{
		{"zones", zonesTable},
		{"services", servicesTable},
		{"proxies", proxiesTable},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := c.table(&out, readFixture(t, filepath.Join("testdata", c.name+".json"))); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, out.Bytes())
		})
	}
}

func decodeList(t *testing.T, name string) []*resource.Resource {
	t.Helper()
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(readFixture(t, filepath.Join("testdata", name)), &page); err != nil {
		t.Fatal(err)
	}
	var out []*resource.Resource
	for _, item := range page.Items {
		r, err := resource.Decode(item)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, r)
	}
	return out
}

// Dataplanes on a zone say whether each one's proxy is connected (kind,
// sync state); on the global, which has no proxies, they do not.
func TestDataplaneTablesGolden(t *testing.T) {
	fixClock(t)
	items := decodeList(t, "dataplanes.json")
	var proxies struct {
		Items []proxyItem `json:"items"`
	}
	if err := json.Unmarshal(readFixture(t, "testdata/proxies.json"), &proxies); err != nil {
		t.Fatal(err)
	}
	byName := map[string]proxyItem{}
	for _, p := range proxies.Items {
		if p.Dataplane != "" {
			byName[p.Mesh+"/"+p.Dataplane] = p
		}
	}
	var zone, global bytes.Buffer
	if err := dataplanesTable(&zone, items, byName); err != nil {
		t.Fatal(err)
	}
	golden(t, "dataplanes-zone", zone.Bytes())
	if err := dataplanesTable(&global, items, nil); err != nil {
		t.Fatal(err)
	}
	golden(t, "dataplanes-global", global.Bytes())
}

// Meshes show their cross-zone mode (Ingress by default).
func TestMeshTableGolden(t *testing.T) {
	fixClock(t)
	d, err := resource.Types.Get(resource.MeshType)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printTable(&out, d, decodeList(t, "meshes.json")); err != nil {
		t.Fatal(err)
	}
	golden(t, "meshes", out.Bytes())
}

// ZoneIngresses show one row per zone, summed over its records: zone-1
// in the per-service format, zone-2 as an older zone writes it (one record
// listing every service), zone-3 offering nothing.
func TestZoneIngressTableGolden(t *testing.T) {
	fixClock(t)
	d, err := resource.Types.Get(resource.ZoneIngressType)
	if err != nil {
		t.Fatal(err)
	}
	items := decodeList(t, "zoneingresses.json")
	var out bytes.Buffer
	if err := printTable(&out, d, items); err != nil {
		t.Fatal(err)
	}
	out.WriteString("\nzone-1 alone:\n")
	if err := printTable(&out, d, ofZone(items, "zone-1")); err != nil {
		t.Fatal(err)
	}
	golden(t, "zoneingresses", out.Bytes())
}

// VIP records show the service each is for (their names are hashes); a
// legacy table not yet migrated shows how many it holds.
func TestVIPTableGolden(t *testing.T) {
	fixClock(t)
	d, err := resource.Types.Get(resource.VIPTableType)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printTable(&out, d, decodeList(t, "viptables.json")); err != nil {
		t.Fatal(err)
	}
	golden(t, "viptables", out.Bytes())
}
