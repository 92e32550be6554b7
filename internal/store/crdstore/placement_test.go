package crdstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

// A Dataplane labelled with a Kubernetes namespace lives there, owned by
// its Pod; the store still finds it by atoll key alone.
func dataplaneLivesInItsPodsNamespace(t *testing.T, c *cluster) {
	ctx := context.Background()
	c.namespace(t, "kong")
	pod, err := c.admin.CoreV1().Pods("kong").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kong-0"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kong", Image: "kong"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := c.store(t, crdstore.Config{Namespace: "atoll-system", Owners: func(r *resource.Resource) []metav1.OwnerReference {
		if r.Meta.Labels[resource.NamespaceLabel] != "kong" {
			return nil
		}
		return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	}})
	other := c.store(t, crdstore.Config{Namespace: "other-zone"})

	gw := storetest.Dataplane("default", "kong-0-kong", 1)
	gw.Meta.Labels = map[string]string{
		resource.NamespaceLabel: "kong", resource.ZoneLabel: "zone-1",
		"note": "not/a/kubernetes:label-value", // atoll allows it; kept, not mirrored
	}
	n := gw.Spec.(*v1alpha1.Dataplane).Networking
	n.Inbound, n.Gateway = nil, gateway()
	created, err := s.Create(ctx, gw)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	gvr, _ := crdstore.GVR(resource.DataplaneType)
	obj, err := c.dyn.Resource(gvr).Namespace("kong").Get(ctx, "kong-0-kong.default", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Dataplane is not in the Pod's namespace: %v", err)
	}
	if refs := obj.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != pod.UID {
		t.Errorf("owner references %v, want the Pod %s", refs, pod.UID)
	}
	ls := obj.GetLabels()
	if ls[crdstore.HomeLabel] != "atoll-system" || ls[crdstore.MeshLabel] != "default" || ls[resource.ZoneLabel] != "zone-1" {
		t.Errorf("object labels %v: want home, mesh and the zone label mirrored", ls)
	}
	if _, mirrored := ls["note"]; mirrored {
		t.Errorf("a label value Kubernetes refuses was mirrored: %v", ls)
	}

	key := created.Key()
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get by key: %v", err)
	}
	if got.Meta.Labels["note"] != "not/a/kubernetes:label-value" || got.Meta.Version != created.Meta.Version {
		t.Errorf("Get: labels %v version %q, want every atoll label back at %q", got.Meta.Labels, got.Meta.Version, created.Meta.Version)
	}
	if all, _ := s.List(ctx, resource.DataplaneType, "default"); len(all) != 1 {
		t.Errorf("List: %d Dataplanes, want 1", len(all))
	}
	if all, _ := other.List(ctx, resource.DataplaneType, ""); len(all) != 0 {
		t.Errorf("a store with another home sees %d Dataplanes, want none", len(all))
	}
	if _, err := other.Get(ctx, key); !store.IsNotFound(err) {
		t.Errorf("a store with another home: Get = %v, want not found", err)
	}

	// One key, one object: not again in the home namespace.
	dup := storetest.Dataplane("default", "kong-0-kong", 2)
	if _, err := s.Create(ctx, dup); !store.IsAlreadyExists(err) {
		t.Errorf("Create of the key in another namespace: got %v, want already exists", err)
	}
	dup.Meta.Version = created.Meta.Version
	if _, err := s.Update(ctx, dup); err == nil || !strings.Contains(err.Error(), "cannot move") {
		t.Errorf("Update moving namespaces: got %v, want refused", err)
	}
	// An Apply put is stored as given: it moves.
	if err := s.Apply(ctx, []store.Op{{Put: dup}}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if _, err := c.dyn.Resource(gvr).Namespace("kong").Get(ctx, "kong-0-kong.default", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after an Apply without the namespace label, the object in kong: %v, want gone", err)
	}
	if _, err := c.dyn.Resource(gvr).Namespace("atoll-system").Get(ctx, "kong-0-kong.default", metav1.GetOptions{}); err != nil {
		t.Errorf("after an Apply without the namespace label, the object in the home namespace: %v", err)
	}
	if err := s.Delete(ctx, key, ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, key); !store.IsNotFound(err) {
		t.Errorf("Get after Delete: %v", err)
	}
}

// `kubectl get dataplanes -A` prints the columns the CRD declares: the API
// server renders them as a Table.
func printerColumns(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "printer"})
	gw := storetest.Dataplane("default", "kong", 1)
	n := gw.Spec.(*v1alpha1.Dataplane).Networking
	n.Inbound, n.Gateway = nil, gateway()
	wl := storetest.Dataplane("default", "backend", 8080)
	wl.Spec.(*v1alpha1.Dataplane).Networking.Inbound = append(wl.Spec.(*v1alpha1.Dataplane).Networking.Inbound,
		&v1alpha1.Dataplane_Networking_Inbound{Port: 9090, Tags: map[string]string{resource.ServiceTag: "metrics"}})
	for _, r := range []*resource.Resource{gw, wl} {
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := c.admin.Discovery().RESTClient().Get().
		AbsPath("/apis/atoll.io/v1alpha1/namespaces/printer/dataplanes").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		Do(ctx).Raw()
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, col := range table.ColumnDefinitions {
		cols = append(cols, col.Name)
	}
	if got, want := strings.Join(cols, ","), "Name,Mesh,Address,Kind,Services,Age"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	rows := map[string]string{}
	for _, row := range table.Rows {
		rows[fmt.Sprint(row.Cells[0])] = fmt.Sprint(row.Cells[1:5])
	}
	for name, want := range map[string]string{
		"kong.default":    "[default 10.0.0.1 gateway kong_kong_svc_80]",
		"backend.default": "[default 10.0.0.1 standard backend,metrics]",
	} {
		if rows[name] != want {
			t.Errorf("row %s: %s, want %s", name, rows[name], want)
		}
	}
}
