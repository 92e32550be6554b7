// Package chart tests the Helm chart charts/atoll with the pinned helm
// (test/helmbin): lint, golden renderings of both modes, the schema's
// refusals, a server-side dry-run apply against a real kube-apiserver,
// the zone's RBAC against test/zonerbac, the rendered flags against
// `atoll global --help` and `atoll zone --help`, and both modes run: the
// tests play the kubelet for the rendered pod (its Secrets and ConfigMaps
// written as files, cmd/atoll run with its arguments), the zone as the
// chart's ServiceAccount on a real kube-apiserver.
//
// The test files hold the tests; chart.go renders the chart and reads what
// it renders, pod.go plays the kubelet for a rendered pod and creates
// rendered objects on an API server, for this package's tests and the
// multi-cluster suite (test/e2e/multicluster).
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Dir is the chart's directory, an absolute path found from this source
// file's, so that tests of any package reach it.
var Dir = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) { // built with -trimpath: from a package two levels down
		return filepath.Join("..", "..", "charts", "atoll")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "atoll")
}()

// Release and Namespace are the release the tests render.
const (
	Release   = "atoll"
	Namespace = "atoll-system"
)

// Helm runs helm with args and returns its standard output, or an error
// carrying its standard error.
func Helm(helm string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Template renders the chart as release Release in Namespace with the
// values files and further helm flags (--set...).
func Template(helm string, valuesFiles []string, flags ...string) ([]byte, error) {
	args := []string{"template", Release, Dir, "--namespace", Namespace}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	return Helm(helm, append(args, flags...)...)
}

// Objects decodes a rendered manifest stream into its objects, skipping
// empty documents.
func Objects(manifest []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifest)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the rendered manifest (after object %d): %w", len(objs), err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("decoding the rendered manifest (object %d): %w", len(objs)+1, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // a document holding only comments
		}
		// The unstructured scheme keeps integers as int64, as clients do.
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(js, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("decoding the rendered manifest (object %d): %w", len(objs)+1, err)
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("the rendered manifest's object %d is a %T, not one object", len(objs)+1, obj)
		}
		objs = append(objs, u)
	}
}

// Find returns the object of kind and name among objs, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}
