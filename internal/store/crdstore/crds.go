package crdstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	sigsyaml "sigs.k8s.io/yaml"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates or updates the CustomResourceDefinitions of every
// *.yaml file in dir (charts/atoll/crds) and waits until the API server
// serves each of them (condition Established), or ctx ends.
func InstallCRDs(ctx context.Context, client dynamic.Interface, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("listing CRDs in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRDs (*.yaml) in %s: point at charts/atoll/crds", dir)
	}
	sort.Strings(files)
	crds := client.Resource(crdGVR)
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("reading CRD: %w", err)
		}
		obj := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("CRD file %s is not valid YAML: %w", f, err)
		}
		if obj.GetKind() != "CustomResourceDefinition" || obj.GetName() == "" {
			return fmt.Errorf("%s holds a %q named %q: want one named CustomResourceDefinition per file", f, obj.GetKind(), obj.GetName())
		}
		old, err := crds.Get(ctx, obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = crds.Create(ctx, obj, metav1.CreateOptions{FieldManager: fieldManager})
		case err == nil:
			obj.SetResourceVersion(old.GetResourceVersion())
			_, err = crds.Update(ctx, obj, metav1.UpdateOptions{FieldManager: fieldManager})
		}
		if err != nil {
			return fmt.Errorf("installing CRD %s from %s: %w", obj.GetName(), f, err)
		}
		names = append(names, obj.GetName())
	}
	for _, name := range names {
		if err := waitEstablished(ctx, crds, name); err != nil {
			return err
		}
	}
	return nil
}

// waitEstablished watches CRD name until its Established condition is True.
func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string) error {
	for {
		obj, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s: %w", name, err)
		}
		if established(obj) {
			return nil
		}
		w, err := crds.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: obj.GetResourceVersion(),
		})
		if err != nil {
			return fmt.Errorf("waiting for CRD %s: %w", name, err)
		}
		done := false
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(*unstructured.Unstructured); ok && established(o) {
				done = true
				break
			}
		}
		w.Stop()
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
