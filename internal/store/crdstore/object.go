package crdstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// RBACRules is where charts/atoll keeps the rules of the zone's
// ClusterRole and Role; errors the API server answers 403 Forbidden name it.
const RBACRules = "charts/atoll/files/zone-rbac"

// Group and Version of atoll's custom resources.
const (
	Group   = "atoll.io"
	Version = "v1alpha1"
)

// Labels and fields the store sets on every object. The crd.atoll.io/
// prefix is reserved: atoll labels under it are refused.
const (
	// HomeLabel names the store's home namespace: a store sees only the
	// objects carrying its own, wherever they live.
	HomeLabel = "crd.atoll.io/home"
	// MeshLabel mirrors the mesh of a mesh-scoped resource, for selection.
	MeshLabel = "crd.atoll.io/mesh"

	reservedPrefix = "crd.atoll.io/"
)

// GVR returns the Kubernetes resource of atoll type t.
func GVR(t resource.Type) (schema.GroupVersionResource, error) {
	d, err := resource.Types.Get(t)
	if err != nil {
		return schema.GroupVersionResource{}, err
	}
	return schema.GroupVersionResource{Group: Group, Version: Version, Resource: d.Plural}, nil
}

// ObjectName is the Kubernetes object name of key: the name for types
// without a mesh, "<name>.<mesh>" for mesh-scoped ones. atoll names and
// meshes are DNS labels (no dots), so the map is 1:1 and the result is a
// valid DNS subdomain.
func ObjectName(key resource.Key) string {
	if key.Mesh == "" {
		return key.Name
	}
	return key.Name + "." + key.Mesh
}

// checkKey refuses keys Kubernetes could not store, or that would not map
// back 1:1, before any request is made.
func checkKey(key resource.Key) error {
	d, err := resource.Types.Get(key.Type)
	if err != nil {
		return err
	}
	if msg := resource.CheckName(key.Name); msg != "" {
		return fmt.Errorf("%s: name %s", key, msg)
	}
	switch {
	case d.Scope == resource.ScopeMesh && key.Mesh == "":
		return fmt.Errorf("%s: mesh is required for %s", key, key.Type)
	case d.Scope == resource.ScopeMesh:
		if msg := resource.CheckName(key.Mesh); msg != "" {
			return fmt.Errorf("%s: mesh %s", key, msg)
		}
	case key.Mesh != "":
		return fmt.Errorf("%s: mesh must be empty: %s does not belong to a mesh", key, key.Type)
	}
	return nil
}

// toObject renders r as the custom resource stored in namespace ns of the
// store whose home is home.
func toObject(r *resource.Resource, ns, home string) (*unstructured.Unstructured, error) {
	key := r.Key()
	for k := range r.Meta.Labels {
		if strings.HasPrefix(k, reservedPrefix) {
			return nil, fmt.Errorf("%s: label %q uses the prefix %s, which the Kubernetes store reserves: rename it", key, k, reservedPrefix)
		}
	}
	specJSON, err := protojson.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", key, err)
	}
	var spec map[string]any
	if err := json.Unmarshal(specJSON, &spec); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", key, err)
	}
	if spec == nil {
		spec = map[string]any{}
	}
	content := map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       string(key.Type),
		"spec":       spec,
	}
	if key.Mesh != "" {
		content["mesh"] = key.Mesh
	}
	if dp, ok := r.Spec.(*v1alpha1.Dataplane); ok {
		content["role"], content["services"] = display(dp)
	}
	if len(r.Meta.Labels) > 0 {
		ls := make(map[string]any, len(r.Meta.Labels))
		for k, v := range r.Meta.Labels {
			ls[k] = v
		}
		content["labels"] = ls
	}
	if !r.Meta.CreationTime.IsZero() {
		content["creationTime"] = r.Meta.CreationTime.UTC().Format(time.RFC3339Nano)
	}
	if !r.Meta.ModificationTime.IsZero() {
		content["modificationTime"] = r.Meta.ModificationTime.UTC().Format(time.RFC3339Nano)
	}
	obj := &unstructured.Unstructured{Object: content}
	obj.SetName(ObjectName(key))
	obj.SetNamespace(ns)
	obj.SetLabels(kubeLabels(r, home))
	obj.SetResourceVersion(r.Meta.Version)
	return obj, nil
}

// display returns the printer columns of a Dataplane that its spec holds
// only in parts: its role (gateway or standard) and its services.
func display(dp *v1alpha1.Dataplane) (role, services string) {
	n := dp.GetNetworking()
	if gw := n.GetGateway(); gw != nil {
		return "gateway", gw.GetTags()[resource.ServiceTag]
	}
	var names []string
	for _, in := range n.GetInbound() {
		if s := in.GetTags()[resource.ServiceTag]; s != "" && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	return "standard", strings.Join(names, ",")
}

// kubeLabels are the object's metadata.labels: the store's own, plus each
// atoll label that Kubernetes also accepts as a label (atoll allows longer
// values and '/' or ':' in them), so `kubectl get -l` works for the usual
// ones. The atoll labels themselves live in the object's labels field.
func kubeLabels(r *resource.Resource, home string) map[string]string {
	out := map[string]string{HomeLabel: home}
	if r.Meta.Mesh != "" {
		out[MeshLabel] = r.Meta.Mesh
	}
	for k, v := range r.Meta.Labels {
		if len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			out[k] = v
		}
	}
	return out
}

// fromObject is the inverse of toObject, for an object of type t. The
// version is the object's resourceVersion.
func fromObject(t resource.Type, obj *unstructured.Unstructured) (*resource.Resource, error) {
	what := fmt.Sprintf("%s %s/%s", t, obj.GetNamespace(), obj.GetName())
	d, err := resource.Types.Get(t)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", what, err)
	}
	mesh, _, _ := unstructured.NestedString(obj.Object, "mesh")
	name := obj.GetName()
	if d.Scope == resource.ScopeMesh {
		var ok bool
		if name, ok = strings.CutSuffix(name, "."+mesh); !ok || mesh == "" {
			return nil, fmt.Errorf("decoding %s: its name must be <name>.<mesh> with mesh %q: fix or delete the object", what, mesh)
		}
	}
	r := &resource.Resource{Meta: resource.Meta{
		Type: d.Type, Mesh: mesh, Name: name,
		Version: obj.GetResourceVersion(),
	}}
	if err := checkKey(r.Key()); err != nil {
		return nil, fmt.Errorf("decoding %s: %w: fix or delete the object", what, err)
	}
	if ls, ok, err := unstructured.NestedStringMap(obj.Object, "labels"); err != nil {
		return nil, fmt.Errorf("decoding %s: labels: %w", what, err)
	} else if ok && len(ls) > 0 {
		r.Meta.Labels = maps.Clone(ls)
	}
	for field, dst := range map[string]*time.Time{"creationTime": &r.Meta.CreationTime, "modificationTime": &r.Meta.ModificationTime} {
		s, _, _ := unstructured.NestedString(obj.Object, field)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %s %q is not an RFC 3339 time: fix or delete the object", what, field, s)
		}
		*dst = t
	}
	spec, _, err := unstructured.NestedFieldNoCopy(obj.Object, "spec")
	if err != nil {
		return nil, fmt.Errorf("decoding %s: spec: %w", what, err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: spec: %w", what, err)
	}
	r.Spec = d.New()
	if spec != nil {
		if err := protojson.Unmarshal(specJSON, r.Spec); err != nil {
			return nil, fmt.Errorf("decoding %s: spec: %w: fix or delete the object", what, err)
		}
	}
	return r, nil
}
