package zone

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// TestKubernetesModeNamesMissingInstallSteps opens Kubernetes mode against
// a real API server as an operator would meet it: first without the CRDs,
// then without the system namespace, then with both.
func TestKubernetesModeNamesMissingInstallSteps(t *testing.T) {
	env := kubeenv.Start(t)
	ctx := context.Background()
	cfg := Default()
	cfg.Zone, cfg.Mode, cfg.DataDir = "zone-1", ModeKubernetes, t.TempDir()
	cfg.Kubernetes.Kubeconfig = kubeenv.WriteKubeconfig(t, env.Config())
	cfg.Kubernetes.Namespace = "atoll-system"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	refused := func(want ...string) {
		t.Helper()
		m, err := openMode(ctx, cfg, quiet())
		if err == nil {
			m.store.Close()
			t.Fatalf("openMode opened kubernetes mode, want %q", want)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("openMode = %q, want it to contain %q", err, w)
			}
		}
	}

	refused("dataplanes.atoll.io", "zoneingresses.atoll.io", "kubectl apply -f charts/atoll/crds/")

	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join("..", "charts", "atoll", "crds")); err != nil {
		t.Fatal(err)
	}
	refused(`namespace "atoll-system" does not exist`, "kubectl create namespace atoll-system")

	if _, err := env.Clientset(t).CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "atoll-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := openMode(ctx, cfg, quiet())
	if err != nil {
		t.Fatalf("openMode with the CRDs and the namespace: %v", err)
	}
	defer m.store.Close()
	if m.source == nil {
		t.Fatal("kubernetes mode has no source of Dataplanes")
	}
	// The store is the API server's: a Mesh written through it is a
	// custom resource in the system namespace.
	if err := store.EnsureMesh(ctx, m.store, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatalf("creating a Mesh through the store: %v", err)
	}
	gvr, err := crdstore.GVR(resource.MeshType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvr).Namespace("atoll-system").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Errorf("the Mesh is not a custom resource in atoll-system: %v", err)
	}
	// Readiness waits for the first reconcile, which only Run does.
	var controllerCheck bool
	for _, c := range m.checks {
		if c.Name == "kubernetes" {
			controllerCheck = true
			if err := c.Check(ctx); err == nil {
				t.Error("the kubernetes check passed before the controller ran")
			}
		}
	}
	if !controllerCheck {
		t.Error("kubernetes mode has no readiness check for its controller")
	}
}
