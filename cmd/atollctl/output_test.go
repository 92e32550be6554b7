package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of atollctl's tables from what they print now")

// fixedNow is the time the golden files' ages are measured from.
var fixedNow = time.Date(2026, 12, 2, 6, 5, 0, 0, time.UTC)

// golden compares got with testdata/NAME.golden, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/atollctl -run %s -update to write it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what atollctl prints (go test ./cmd/atollctl -run %s -update rewrites it; read the diff)\n--- got:\n%s\n--- want:\n%s", path, t.Name(), got, want)
	}
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func statusFixture(t *testing.T, name string) *proxyStatus {
	t.Helper()
	st := &proxyStatus{}
	if err := json.Unmarshal(readFixture(t, filepath.Join("testdata", name)), st); err != nil {
		t.Fatal(err)
	}
	return st
}

// The route tables are read from the configurations the zone's own golden
// files hold (zone/xds/testdata), the same JSON GET .../xds/config serves.
func TestInspectRouteTableGolden(t *testing.T) {
	const zoneGoldens = "../../zone/xds/testdata/"
	for _, c := range []struct {
		name string
		in   inspection
	}{{
		// A gateway's gRPC client in zone-1, reaching backend in zone-2
		// directly and web locally.
		name: "inspect-proxyless-gateway",
		in: inspection{Mesh: "default", Name: "kong", Zone: "zone-1", Gateway: true,
			Status: statusFixture(t, "status-kong-insync.json"), Config: readFixture(t, zoneGoldens+"gateway-proxyless-direct.golden.json")},
	}, {
		// A sidecar whose proxy refused a cluster update, reaching
		// zone-2's instances through zone-2's ingress.
		name: "inspect-sidecar-nacked",
		in: inspection{Mesh: "default", Name: "web-1", Zone: "zone-1",
			Status: statusFixture(t, "status-web-nacked.json"), Config: readFixture(t, zoneGoldens+"sidecar-envoy-ingress.golden.json")},
	}, {
		// A delegated gateway whose Envoy is not connected.
		name: "inspect-gateway-not-connected",
		in: inspection{Mesh: "default", Name: "edge", Zone: "zone-1", Gateway: true,
			Config: readFixture(t, zoneGoldens+"gateway-envoy-service-addresses.golden.json")},
	}, {
		// A connected gRPC client inspected as the Envoy it is not.
		name: "inspect-other-kind",
		in: inspection{Mesh: "default", Name: "kong", Zone: "zone-1", Gateway: true, Kind: "envoy",
			Status: statusFixture(t, "status-kong-insync.json"), Config: readFixture(t, zoneGoldens+"gateway-envoy-ingress.golden.json")},
	}, {
		// The zone's ingress routes by SNI to the zone's own instances.
		name: "inspect-ingress",
		in: inspection{Name: "zone-1", Zone: "zone-1", Ingress: true,
			Status: statusFixture(t, "status-ingress.json"), Config: readFixture(t, zoneGoldens+"ingress.golden.json"),
			Summary: summarize(ofZone(decodeList(t, "zoneingresses.json"), "zone-1"))[0]},
	}, {
		// An ingress with nothing to offer says why.
		name: "inspect-ingress-empty",
		in:   inspection{Name: "zone-3", Zone: "zone-3", Ingress: true, Config: []byte("{}\n")},
	}} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printInspection(&out, c.in, fixedNow); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, out.Bytes())
		})
	}
}

func TestRouteTableRefusesWhatIsNotAConfiguration(t *testing.T) {
	if _, err := routeTable([]byte(`<html>`)); err == nil || !bytes.Contains([]byte(err.Error()), []byte("not an xDS configuration")) {
		t.Errorf("HTML: %v, want an error saying it is not an xDS configuration", err)
	}
}
