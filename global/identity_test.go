package global

import (
	"context"
	"sync"
	"testing"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
)

// Replicas starting together on one etcd prefix agree on one identity, kept
// across restarts; another prefix (another cluster's state) has another.
func TestClusterIDIsCreatedOnceAndSharedByReplicas(t *testing.T) {
	_, client := etcdtest.Start(t, "")
	ctx := context.Background()
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := loadClusterID(ctx, client, "/atoll/")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("replicas got identities %v, want one shared identity", ids)
		}
	}
	again, err := loadClusterID(ctx, client, "/atoll/")
	if err != nil || again != ids[0] {
		t.Fatalf("after a restart: %q, %v; want %q", again, err, ids[0])
	}
	other, err := loadClusterID(ctx, client, "/other/")
	if err != nil || other == ids[0] {
		t.Fatalf("another prefix: %q, %v; want an identity other than %q", other, err, ids[0])
	}
	if _, err := client.Put(ctx, "/broken/cluster-id", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := loadClusterID(ctx, client, "/broken/"); err == nil {
		t.Fatal("an empty stored identity was accepted")
	}
}
