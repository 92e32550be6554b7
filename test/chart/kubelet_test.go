package chart

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// runPod is RunPod with cmd/atoll built for this package's tests; it
// returns the arguments run too.
func runPod(t *testing.T, objs []*unstructured.Unstructured, kind string, extraArgs, env []string) (*Pod, []string) {
	t.Helper()
	p := RunPod(t, atoll.Path(t), objs, kind, extraArgs, env)
	return p, p.Args
}
