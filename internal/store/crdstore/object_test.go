package crdstore

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

func TestObjectName(t *testing.T) {
	for _, tc := range []struct {
		key  resource.Key
		want string
	}{
		{resource.Key{Type: resource.MeshType, Name: "default"}, "default"},
		{resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "kong-0-kong"}, "kong-0-kong.default"},
		{resource.Key{Type: resource.VIPTableType, Mesh: "m-1", Name: "vips"}, "vips.m-1"},
	} {
		if got := ObjectName(tc.key); got != tc.want {
			t.Errorf("ObjectName(%s) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestKeysKubernetesCannotHoldAreRefused(t *testing.T) {
	for _, tc := range []struct {
		key  resource.Key
		want string
	}{
		{resource.Key{Type: resource.DataplaneType, Mesh: "default", Name: "Kong.0"}, `name "Kong.0" is invalid`},
		{resource.Key{Type: resource.DataplaneType, Mesh: "a.b", Name: "dp"}, `mesh "a.b" is invalid`},
		{resource.Key{Type: resource.DataplaneType, Name: "dp"}, "mesh is required"},
		{resource.Key{Type: resource.MeshType, Mesh: "m", Name: "x"}, "mesh must be empty"},
		{resource.Key{Type: "Gadget", Name: "x"}, `unknown resource type "Gadget"`},
	} {
		if err := checkKey(tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkKey(%s) = %v, want %q", tc.key, err, tc.want)
		}
	}
}

func TestReservedLabelsAreRefused(t *testing.T) {
	r := &resource.Resource{
		Meta: resource.Meta{Type: resource.MeshType, Name: "m", Labels: map[string]string{HomeLabel: "elsewhere"}},
		Spec: &v1alpha1.Mesh{},
	}
	if _, err := toObject(r, "ns", "ns"); err == nil || !strings.Contains(err.Error(), "reserves") {
		t.Errorf("got %v, want the reserved prefix refused", err)
	}
}

func TestObjectsEditedPastTheSchemaAreRefused(t *testing.T) {
	good := func() *unstructured.Unstructured {
		r := &resource.Resource{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "m", Name: "vips"}, Spec: &v1alpha1.VIPTable{}}
		obj, err := toObject(r, "ns", "ns")
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	if _, err := fromObject(resource.VIPTableType, good()); err != nil {
		t.Fatalf("a good object: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*unstructured.Unstructured)
		want string
	}{
		"name without its mesh":  {func(o *unstructured.Unstructured) { o.SetName("vips") }, "must be <name>.<mesh>"},
		"mesh changed":           {func(o *unstructured.Unstructured) { o.Object["mesh"] = "other" }, "must be <name>.<mesh>"},
		"time not RFC 3339":      {func(o *unstructured.Unstructured) { o.Object["creationTime"] = "yesterday" }, `creationTime "yesterday"`},
		"spec of the wrong kind": {func(o *unstructured.Unstructured) { o.Object["spec"] = map[string]any{"entries": "x"} }, "spec:"},
	} {
		o := good()
		tc.edit(o)
		if _, err := fromObject(resource.VIPTableType, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}
