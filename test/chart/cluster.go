package chart

import (
	"context"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// StartCluster starts a real kube-apiserver (kubeenv) ready for the chart:
// its CRDs installed, as helm installs crds/ before a release, and the
// release namespace created.
func StartCluster(ctx context.Context, t testing.TB) (*kubeenv.Env, *dynamic.DynamicClient) {
	t.Helper()
	env := kubeenv.Start(t)
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join(Dir, "crds")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Clientset(t).CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return env, dyn
}
