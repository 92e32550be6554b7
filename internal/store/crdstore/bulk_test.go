package crdstore_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// An Apply of more Dataplanes than a transaction holds (a zone's first
// reconcile) finds them all with one List, then creates, updates, moves
// and deletes each as a small Apply would: every key ends up exactly once,
// where its labels say.
func bulkApply(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "bulk"})
	c.namespace(t, "bulk-pods")
	inPods := func(name string, port uint32) *resource.Resource {
		r := storetest.Dataplane("default", name, port)
		r.Meta.Labels = map[string]string{resource.NamespaceLabel: "bulk-pods"}
		return r
	}
	// Before: kept (to be updated), moved (from bulk-pods to the home
	// namespace), gone (to be deleted).
	if err := s.Apply(ctx, []store.Op{{Put: inPods("kept", 1)}, {Put: inPods("moved", 1)}, {Put: inPods("gone", 1)}}); err != nil {
		t.Fatalf("first Apply: %v", err)
	}

	const n = 300
	ops := []store.Op{
		{Put: inPods("kept", 2)},
		{Put: storetest.Dataplane("default", "moved", 2)},
		{Delete: resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "gone"}},
		{Delete: resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "never-was"}},
	}
	for i := range n {
		ops = append(ops, store.Op{Put: inPods(fmt.Sprintf("dp-%d", i), uint32(1000+i))})
	}
	if err := s.Apply(ctx, ops); err != nil {
		t.Fatalf("bulk Apply: %v", err)
	}

	all, err := s.List(ctx, resource.DataplaneType, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, r := range all {
		if _, dup := got[r.Meta.Name]; dup {
			t.Errorf("%s is stored twice", r.Meta.Name)
		}
		got[r.Meta.Name] = r.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()[0].GetPort()
	}
	if len(got) != n+2 {
		t.Errorf("%d Dataplanes after the bulk Apply, want %d", len(got), n+2)
	}
	if got["kept"] != 2 || got["moved"] != 2 {
		t.Errorf("kept has port %d, moved %d: want both updated to 2", got["kept"], got["moved"])
	}
	if _, ok := got["gone"]; ok {
		t.Error("gone was not deleted")
	}
	for i := range n {
		if p := got[fmt.Sprintf("dp-%d", i)]; p != uint32(1000+i) {
			t.Fatalf("dp-%d has port %d, want %d", i, p, 1000+i)
		}
	}
	gvr, _ := crdstore.GVR(resource.DataplaneType)
	for ns, want := range map[string]int{"bulk-pods": n + 1, "bulk": 1} {
		list, err := c.dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != want {
			t.Errorf("%d Dataplane objects in namespace %s, want %d", len(list.Items), ns, want)
		}
	}
}
