package boltstore_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/boltstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsResourcesAndVersionsKeepGrowing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.Create(ctx, storetest.Dataplane("default", "dp-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, created.Key())
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if got.Meta.Version != created.Meta.Version {
		t.Errorf("version after reopen: %q, want %q", got.Meta.Version, created.Meta.Version)
	}
	other, err := s.Create(ctx, storetest.Dataplane("default", "dp-2", 1))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := strconv.Atoi(created.Meta.Version)
	b, _ := strconv.Atoi(other.Meta.Version)
	if b <= a {
		t.Errorf("version went backwards across a restart: %d then %d", a, b)
	}
}

func TestSecondOpenerIsRefusedClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = boltstore.Open(path)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: got %v, want an error naming another process", err)
	}
	if _, err := s.List(context.Background(), resource.DataplaneType, ""); err != nil {
		t.Fatalf("first opener broken by the refused second: %v", err)
	}
}
