package etcdstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/embedetcd/etcdtest"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/etcdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// padded is a Dataplane of about size bytes, most of it one label.
func padded(name string, size int) *resource.Resource {
	r := storetest.Dataplane("default", name, 8080)
	r.Meta.Labels = map[string]string{"pad": strings.Repeat("x", size)}
	return r
}

func TestApplySplitsTransactionsByBytes(t *testing.T) {
	// 100 resources of 40 KiB: 4 MiB, under 128 operations but far over
	// etcd's 1.5 MiB request limit in one transaction.
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	s := etcdstore.New(client, "")
	var ops []store.Op
	for i := range 100 {
		ops = append(ops, store.Op{Put: padded(fmt.Sprintf("dp-%03d", i), 40<<10)})
	}
	if err := s.Apply(ctx, ops); err != nil {
		t.Fatalf("Apply of 4 MiB in 100 resources: %v", err)
	}
	got, err := s.List(ctx, resource.DataplaneType, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 100 {
		t.Fatalf("%d resources stored, want 100", len(got))
	}
	// Each transaction is one etcd revision: none may hold more than the
	// byte budget.
	perRev := map[string]int{}
	for _, r := range got {
		perRev[r.Meta.Version] += 40 << 10
	}
	if len(perRev) < 4 {
		t.Errorf("%d transactions for 4 MiB, want at least 4 of at most 1 MiB", len(perRev))
	}
	for rev, n := range perRev {
		if n > etcdstore.DefaultMaxTxnBytes {
			t.Errorf("transaction at revision %s carried %d bytes of labels, over %d", rev, n, etcdstore.DefaultMaxTxnBytes)
		}
	}
}

func TestATooLargeResourceIsNamedAndNothingIsWritten(t *testing.T) {
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	s := etcdstore.New(client, "")
	s.MaxTxnBytes = 256 << 10
	ops := []store.Op{
		{Put: padded("small-1", 1<<10)},
		{Put: padded("huge-1", 300<<10)},
		{Put: padded("small-2", 1<<10)},
		{Put: padded("huge-2", 2<<20)},
	}
	err := s.Apply(ctx, ops)
	if !store.IsTooLarge(err) {
		t.Fatalf("Apply: %v, want a too-large error", err)
	}
	var names []string
	for _, e := range store.TooLargeErrors(err) {
		names = append(names, e.Key.Name)
		if e.Limit != 256<<10 || e.Size <= e.Limit {
			t.Errorf("%s: size %d, limit %d; want the size over the 262144-byte limit", e.Key.Name, e.Size, e.Limit)
		}
	}
	if got := strings.Join(names, " "); got != "huge-1 huge-2" {
		t.Errorf("too large: %q, want %q", got, "huge-1 huge-2")
	}
	if !strings.Contains(err.Error(), "huge-1") || !strings.Contains(err.Error(), "262144") {
		t.Errorf("error %q should name the resource and the limit", err)
	}
	if got, _ := s.List(ctx, resource.DataplaneType, ""); len(got) != 0 {
		t.Errorf("%d resources written, want none", len(got))
	}

	// Without them the rest applies.
	if err := s.Apply(ctx, []store.Op{ops[0], ops[2]}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx, resource.DataplaneType, ""); len(got) != 2 {
		t.Errorf("%d resources written, want 2", len(got))
	}
}

func TestAClusterLimitBelowTheBudgetNamesTheResource(t *testing.T) {
	// The budget is set above etcd's own 1.5 MiB limit, as for a cluster
	// started with a smaller --max-request-bytes than the store assumes.
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	s := etcdstore.New(client, "")
	s.MaxTxnBytes = 8 << 20
	err := s.Apply(ctx, []store.Op{{Put: padded("huge", 3<<20)}})
	if !store.IsTooLarge(err) {
		t.Fatalf("Apply: %v, want a too-large error", err)
	}
	if tl := store.TooLargeErrors(err); len(tl) != 1 || tl[0].Key.Name != "huge" {
		t.Errorf("too large: %v, want huge", tl)
	}
}

func TestAClusterLimitBelowTheBudgetSplitsTheTransaction(t *testing.T) {
	// Three puts of 700 KiB fit the 8 MiB budget in one transaction, but
	// etcd takes at most 1.5 MiB per request: the store splits the
	// transaction until each part fits.
	ctx := context.Background()
	_, client := etcdtest.Start(t, "")
	s := etcdstore.New(client, "")
	s.MaxTxnBytes = 8 << 20
	var ops []store.Op
	for i := range 3 {
		ops = append(ops, store.Op{Put: padded(fmt.Sprintf("dp-%d", i), 700<<10)})
	}
	if err := s.Apply(ctx, ops); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, _ := s.List(ctx, resource.DataplaneType, ""); len(got) != 3 {
		t.Errorf("%d resources written, want 3", len(got))
	}
}
