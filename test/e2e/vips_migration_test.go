package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
)

// A global's data dir written before VIPs were kept per service holds a
// mesh's VIPs in one VIPTable "vips". On start the global splits it into
// one record per service: every service keeps its VIP (in use or cooling
// down), the zone answers with it, and "vips" is gone from the global and,
// by KDS, from the zone.
func TestAnOldDataDirKeepsItsVIPs(t *testing.T) {
	gdir := t.TempDir()
	srv, client := etcdtest.Start(t, filepath.Join(gdir, "etcd"))
	st := etcdstore.New(client, "/atoll/resources/")
	ctx := context.Background()
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	// As the allocator before per-service records stored it.
	since := timestamppb.New(time.Now().Add(-time.Minute))
	if _, err := st.Create(ctx, &resource.Resource{
		Meta: resource.Meta{Type: resource.VIPTableType, Mesh: resource.DefaultMesh, Name: resource.VIPTableName,
			Labels: map[string]string{resource.OriginLabel: resource.OriginGlobal}},
		Spec: &v1alpha1.VIPTable{Entries: []*v1alpha1.VIPTable_Entry{
			{Service: "backend", Vip: "240.1.2.3"},
			{Service: "cooling", Vip: "240.1.2.4", UnusedSince: since},
		}},
	}); err != nil {
		t.Fatal(err)
	}
	client.Close()
	srv.Close()

	g := startGlobal(t, gdir, "--vip-cooldown", "1h")
	dnsAddr := freePort(t)
	z := startSyncedZone(t, "zone-1", t.TempDir(), g.kdsAddr, g.caFile(), "--dns-addr", dnsAddr)
	if status, body := call(t, "PUT", z.apiURL+"/meshes/default/dataplanes/backend-1", backendJSON); status != 201 {
		t.Fatalf("%d %s", status, body)
	}
	records := []string{resource.VIPRecordName("backend"), resource.VIPRecordName("cooling")}
	slices.Sort(records)
	for name, p := range map[string]*process{"the global": g, "zone-1": z} {
		waitFor(t, syncWait, name+"'s VIP records, migrated", func() error {
			status, body := call(t, "GET", p.apiURL+"/meshes/default/viptables", "")
			if got := listNames(t, body); status != 200 || !slices.Equal(got, records) {
				return fmt.Errorf("%d: records %v, want %v", status, got, records)
			}
			return nil
		})
		status, body := call(t, "GET", p.apiURL+"/meshes/default/vips", "")
		var l struct {
			Items []struct {
				Service     string     `json:"service"`
				VIP         string     `json:"vip"`
				Proposed    bool       `json:"proposed"`
				UnusedSince *time.Time `json:"unusedSince"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &l); status != 200 || err != nil {
			t.Fatalf("%s: GET vips: %d %s", name, status, body)
		}
		vips := map[string]string{}
		for _, it := range l.Items {
			vips[it.Service] = it.VIP
			if it.Proposed {
				t.Errorf("%s: %s's VIP is only proposed", name, it.Service)
			}
		}
		if vips["backend"] != "240.1.2.3" {
			t.Errorf("%s: backend's VIP %q, want the one stored before, 240.1.2.3 (%s)", name, vips["backend"], body)
		}
		if p == g && (vips["cooling"] != "240.1.2.4" || l.Items[1].UnusedSince == nil || !l.Items[1].UnusedSince.Equal(since.AsTime())) {
			t.Errorf("the global: the service cooling down lost its VIP or its unused time: %s", body)
		}
	}
	waitResolve(t, dnsAddr, "backend.mesh", "240.1.2.3")
}
