package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

const syncWait = 20 * time.Second

// serviceSummary renders a zone's service view as "name:zone=n,zone=n;...".
func serviceSummary(t *testing.T, z *process) (string, error) {
	status, body := call(t, "GET", z.apiURL+"/meshes/default/services", "")
	if status != 200 {
		return "", fmt.Errorf("services: %d %s", status, body)
	}
	var l struct {
		Items []struct {
			Name  string            `json:"name"`
			Zones map[string]uint32 `json:"zones"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		return "", err
	}
	var parts []string
	for _, it := range l.Items {
		var zs []string
		for zone, n := range it.Zones {
			zs = append(zs, fmt.Sprintf("%s=%d", zone, n))
		}
		sort.Strings(zs)
		parts = append(parts, it.Name+":"+strings.Join(zs, ","))
	}
	return strings.Join(parts, ";"), nil
}

func waitServices(t *testing.T, z *process, want string) {
	t.Helper()
	waitFor(t, syncWait, "service view "+want, func() error {
		got, err := serviceSummary(t, z)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

func waitList(t *testing.T, url, want string) {
	t.Helper()
	waitFor(t, syncWait, url+" = "+want, func() error {
		status, body := call(t, "GET", url, "")
		if status != 200 {
			return fmt.Errorf("%d %s", status, body)
		}
		if got := strings.Join(listNames(t, body), ","); got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

type zoneStatus struct {
	Connected bool `json:"connected"`
	Stats     map[string]struct {
		Sent, Acked, Nacked, Received, Refused uint64
		Subscribed                             bool
	} `json:"stats"`
}

func statusOf(t *testing.T, z *process) zoneStatus {
	status, body := call(t, "GET", z.apiURL+"/zone", "")
	var s zoneStatus
	if status != 200 || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("GET /zone: %d %s", status, body)
	}
	return s
}

func applyFile(t *testing.T, z *process, file string) {
	t.Helper()
	if _, errOut, err := atollctl(t, "", "--api-url", z.apiURL, "apply", "-f", file); err != nil {
		t.Fatalf("apply %s: %v %s", file, err, errOut)
	}
}

func TestSyncAcrossThreeZones(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	z3 := startSyncedZone(t, "zone-3", t.TempDir(), g.kdsAddr, g.caFile())
	applyFile(t, z1, "../sample/zone-1.yaml")
	applyFile(t, z2, "../sample/zone-2.yaml")

	for _, z := range []*process{z1, z2, z3} {
		waitServices(t, z, "backend:zone-2=3")
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "backend-1.zone-2,backend-2.zone-2,backend-3.zone-2,kong.zone-1")
	status, body := call(t, "GET", g.apiURL+"/meshes/default/dataplanes/backend-1.zone-2", "")
	if status != 200 || decodeMeta(t, body).Labels["atoll.io/zone"] != "zone-2" {
		t.Errorf("synced dataplane on the global: %d %s, want label atoll.io/zone zone-2", status, body)
	}
	// Each zone holds its own service summary (its own ZoneIngress and
	// one per service) and the others' relayed ones, never its own
	// relayed back.
	status, body = call(t, "GET", z2.apiURL+"/zoneingresses", "")
	var zis struct {
		Items []meta `json:"items"`
	}
	json.Unmarshal([]byte(body), &zis)
	zones := map[string]bool{}
	for _, zi := range zis.Items {
		zones[zi.Labels["atoll.io/zone"]] = true
		if zi.Labels["atoll.io/zone"] == "zone-2" && zi.Labels["atoll.io/origin"] != "zone" {
			t.Errorf("zone-2 got its own ingress back from the global: %+v", zi)
		}
	}
	if len(zones) != 3 || !zones["zone-1"] || !zones["zone-2"] || !zones["zone-3"] {
		t.Errorf("zone-2 ingresses: %s, want its own and zone-1's and zone-3's", body)
	}

	// Deletes propagate.
	if _, errOut, err := atollctl(t, "", "--api-url", z2.apiURL, "delete", "dataplane", "backend-3"); err != nil {
		t.Fatal(errOut)
	}
	waitServices(t, z1, "backend:zone-2=2")
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "backend-1.zone-2,backend-2.zone-2,kong.zone-1")

	// A service in several zones, and the local instances of zone-1.
	backendInZ1 := strings.Replace(backendJSON, "backend-1", "backend-z1", 1)
	if status, body := call(t, "PUT", z1.apiURL+"/meshes/default/dataplanes/backend-z1", backendInZ1); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	waitServices(t, z3, "backend:zone-1=1,zone-2=2")

	// Zones show on the global, online, with their dataplanes.
	status, body = call(t, "GET", g.apiURL+"/zones/zone-2", "")
	var zv struct {
		Name       string  `json:"name"`
		Enabled    bool    `json:"enabled"`
		Online     bool    `json:"online"`
		LastSeen   *string `json:"lastSeen"`
		Dataplanes int     `json:"dataplanes"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &zv) != nil || !zv.Online || !zv.Enabled || zv.LastSeen == nil || zv.Dataplanes != 2 {
		t.Errorf("GET /zones/zone-2: %d %s", status, body)
	}

	// Disabling zone-2 withdraws its services from the others; enabling
	// brings them back.
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":false}`); status != 200 {
		t.Fatalf("disable zone-2: %d %s", status, body)
	}
	waitServices(t, z3, "backend:zone-1=1")
	if status, body := call(t, "PUT", g.apiURL+"/zones/zone-2", `{"type":"Zone","enabled":true}`); status != 200 {
		t.Fatalf("enable zone-2: %d %s", status, body)
	}
	waitServices(t, z3, "backend:zone-1=1,zone-2=2")

	out, errOut, err := atollctl(t, "", "--api-url", z3.apiURL, "get", "services")
	if err != nil || !strings.Contains(out, "zone-1 (1), zone-2 (2)") {
		t.Errorf("atollctl get services: %v %q %q", err, out, errOut)
	}
	out, errOut, err = atollctl(t, "", "--api-url", g.apiURL, "get", "zones")
	if err != nil || !strings.Contains(out, "SYNC LAG") || len(strings.Split(strings.TrimSpace(out), "\n")) != 4 {
		t.Errorf("atollctl get zones: %v %q %q", err, out, errOut)
	}
}

func TestReconnectReconcilesAndResendsNothingUnchanged(t *testing.T) {
	kdsAddr := freePort(t)
	gdir := t.TempDir()
	g := startGlobal(t, gdir, "--kds-addr", kdsAddr)
	z1dir := t.TempDir()
	z1 := startSyncedZone(t, "zone-1", z1dir, kdsAddr, g.caFile())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), kdsAddr, g.caFile())
	applyFile(t, z2, "../sample/zone-2.yaml")
	waitServices(t, z1, "backend:zone-2=3")

	// Cut: the global stops. Zones keep serving what they know, and zone-2
	// changes while cut.
	g.stop()
	if _, errOut, err := atollctl(t, "", "--api-url", z2.apiURL, "delete", "dataplane", "backend-1"); err != nil {
		t.Fatal(errOut)
	}
	if status, body := call(t, "PUT", z2.apiURL+"/meshes/default/dataplanes/backend-4", strings.NewReplacer("backend-1", "backend-4", "9001", "9004").Replace(backendJSON)); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	if got, _ := serviceSummary(t, z1); got != "backend:zone-2=3" {
		t.Errorf("zone-1 lost remote state during the outage: %q", got)
	}
	// A zone restarted during the outage still has the remote state.
	z1.stop()
	z1 = startSyncedZone(t, "zone-1", z1dir, kdsAddr, g.caFile())
	if got, _ := serviceSummary(t, z1); got != "backend:zone-2=3" {
		t.Errorf("zone-1 restarted during the outage lost remote state: %q", got)
	}

	// Reconnect: the changes made while cut are reconciled, nothing resurrected.
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "backend-2.zone-2,backend-3.zone-2,backend-4.zone-2")
	waitServices(t, z1, "backend:zone-2=3")
	// The counts were 3 before too: wait for backend-4's port.
	waitFor(t, syncWait, "zone-1 to learn backend-4's port", func() error {
		// zone-2's record of backend, among the ZoneIngresses zone-1 holds.
		if status, body := call(t, "GET", z1.apiURL+"/zoneingresses", ""); status != 200 || !strings.Contains(body, `"port":9004`) {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	waitFor(t, syncWait, "zone-2 reconnected", func() error {
		if !statusOf(t, z2).Connected {
			return fmt.Errorf("not connected")
		}
		return nil
	})

	// An unchanged reconnect re-sends nothing, either way.
	g.stop()
	g = startGlobal(t, gdir, "--kds-addr", kdsAddr)
	for _, z := range []*process{z1, z2} {
		// The global subscribed and got its difference from the zone.
		waitFor(t, syncWait, "reconnect", func() error {
			s := statusOf(t, z)
			if !s.Connected || !s.Stats["Dataplane"].Subscribed || !s.Stats["ZoneIngress"].Subscribed {
				return fmt.Errorf("not reconciled yet: %+v", s)
			}
			return nil
		})
	}
	// A change on the global after the reconnect arrives after anything the
	// reconnect itself would have re-sent.
	if status, body := call(t, "PUT", g.apiURL+"/meshes/probe", `{"type":"Mesh"}`); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	for name, z := range map[string]*process{"zone-1": z1, "zone-2": z2} {
		waitList(t, z.apiURL+"/meshes", "default,probe")
		s := statusOf(t, z)
		for typ, st := range s.Stats {
			want := uint64(0)
			switch typ {
			case "Mesh":
				want = 1 // the probe (a mesh without services has no VIP records)
			}
			if st.Sent != 0 || st.Received != want {
				t.Errorf("%s after an unchanged reconnect: %s sent %d, received %d; want 0 sent, %d received", name, typ, st.Sent, st.Received, want)
			}
		}
	}
}

func TestTwoGlobalsOnOneEtcd(t *testing.T) {
	srv, _ := etcdtest.Start(t, "")
	ga := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint(), "--kds-insecure")
	gb := startGlobal(t, t.TempDir(), "--etcd-endpoints", srv.ClientEndpoint(), "--kds-insecure")
	// Either replica verifies the tokens the other issued: zone-2's comes
	// from A and is presented to B.
	z1 := startZone(t, "zone-1", t.TempDir(), append([]string{"--global-address", "grpc://" + ga.kdsAddr, "--kds-insecure"}, tokenFlags(t, gb, "zone-1")...)...)
	z2 := startZone(t, "zone-2", t.TempDir(), append([]string{"--global-address", "grpc://" + gb.kdsAddr, "--kds-insecure"}, tokenFlags(t, ga, "zone-2")...)...)
	applyFile(t, z2, "../sample/zone-2.yaml")
	waitServices(t, z1, "backend:zone-2=3")
	applyFile(t, z1, "../sample/zone-1.yaml")
	waitList(t, gb.apiURL+"/meshes/default/dataplanes", "backend-1.zone-2,backend-2.zone-2,backend-3.zone-2,kong.zone-1")
	if status, body := call(t, "GET", ga.apiURL+"/zones", ""); status != 200 || strings.Join(listNames(t, body), ",") != "zone-1,zone-2" {
		t.Errorf("zones seen by global A: %d %s", status, body)
	}
}

func TestZoneRefusesPlaintextWithoutOptIn(t *testing.T) {
	out, err := runAtoll(t, nil, "zone", "--zone", "zone-1", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--global-address", "grpc://127.0.0.1:5685")
	if err == nil || !strings.Contains(out, "--kds-insecure") {
		t.Fatalf("err %v, output %s", err, out)
	}
}

func TestGlobalServesItsKDSCA(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	status, body := call(t, "GET", g.apiURL+"/kds-ca.pem", "")
	if status != http.StatusOK || !strings.HasPrefix(body, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("/kds-ca.pem: %d %q", status, body)
	}
	// A zone that does not trust the CA does not connect.
	z := startZone(t, "zone-1", t.TempDir(), "--global-address", "grpcs://"+g.kdsAddr)
	waitFor(t, syncWait, "a TLS failure in the zone's status", func() error {
		status, body := call(t, "GET", z.apiURL+"/zone", "")
		if status != 200 || !strings.Contains(body, "certificate") {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	if statusOf(t, z).Connected {
		t.Error("a zone connected to a global it does not trust")
	}
}

func TestOfflineZoneWithdrawnAfterTTL(t *testing.T) {
	g := startGlobal(t, t.TempDir(), "--zone-offline-after", "1s", "--withdraw-offline-after", "2s")
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	z2dir := t.TempDir()
	z2 := startSyncedZone(t, "zone-2", z2dir, g.kdsAddr, g.caFile())
	applyFile(t, z2, "../sample/zone-2.yaml")
	waitServices(t, z1, "backend:zone-2=3")

	// Heartbeats keep an idle zone online past the offline timeout.
	waitFor(t, syncWait, "zone-2 online 3s after connecting", func() error {
		status, body := call(t, "GET", g.apiURL+"/zones/zone-2", "")
		var v struct {
			Online    bool   `json:"online"`
			Connected string `json:"connectTime"`
		}
		json.Unmarshal([]byte(body), &v)
		connected, _ := time.Parse(time.RFC3339Nano, v.Connected)
		if status != 200 || !v.Online || time.Since(connected) < 3*time.Second {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	if got, _ := serviceSummary(t, z1); got != "backend:zone-2=3" {
		t.Fatalf("an online zone's services were withdrawn: %q", got)
	}

	z2.stop()
	waitServices(t, z1, "")
	z2 = startSyncedZone(t, "zone-2", z2dir, g.kdsAddr, g.caFile())
	waitServices(t, z1, "backend:zone-2=3")
}

func TestDeletedZoneIsDrained(t *testing.T) {
	g := startGlobal(t, t.TempDir())
	z1 := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile())
	z2 := startSyncedZone(t, "zone-2", t.TempDir(), g.kdsAddr, g.caFile())
	applyFile(t, z2, "../sample/zone-2.yaml")
	waitServices(t, z1, "backend:zone-2=3")

	// A disconnected zone keeps its data...
	z2.stop()
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "backend-1.zone-2,backend-2.zone-2,backend-3.zone-2")
	// ...a deleted one is drained from the global and from the other zones.
	if status, body := call(t, "DELETE", g.apiURL+"/zones/zone-2", ""); status != 200 {
		t.Fatalf("DELETE zone: %d %s", status, body)
	}
	waitList(t, g.apiURL+"/meshes/default/dataplanes", "")
	waitServices(t, z1, "")
	if status, body := call(t, "GET", g.apiURL+"/zones/zone-2", ""); status != http.StatusNotFound {
		t.Errorf("zone-2 after delete: %d %s", status, body)
	}
}
