package crdstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// crdDir is charts/atoll/crds, seen from this package.
var crdDir = filepath.Join("..", "..", "..", "charts", "atoll", "crds")

// cluster is a real kube-apiserver with atoll's CRDs installed.
type cluster struct {
	dyn   dynamic.Interface
	admin kubernetes.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	env := kubeenv.Start(t)
	cfg := env.Config()
	cfg.QPS, cfg.Burst = 1000, 2000
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := crdstore.InstallCRDs(ctx, dyn, crdDir); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dyn: dyn, admin: admin}
}

func (c *cluster) namespace(t *testing.T, name string) {
	t.Helper()
	_, err := c.admin.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

func (c *cluster) store(t *testing.T, cfg crdstore.Config) *crdstore.Store {
	t.Helper()
	c.namespace(t, cfg.Namespace)
	cfg.Client = c.dyn
	s, err := crdstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOnKubernetes runs every test that needs an API server against one:
// starting one takes seconds of two shared cores. Each test keeps to its
// own namespaces.
func TestOnKubernetes(t *testing.T) {
	c := startCluster(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *cluster)
	}{
		{"conformance", conformance},
		{"schema refuses invalid dataplanes", schemaRefusesInvalidDataplanes},
		{"every field survives the schema", everyFieldSurvivesTheSchema},
		{"dataplane lives in its pod's namespace", dataplaneLivesInItsPodsNamespace},
		{"printer columns", printerColumns},
		{"too large", tooLarge},
		{"bulk apply", bulkApply},
		{"watch resumes when the server ends it", watchResumesWhenTheServerEndsIt},
		{"watch closes when the watcher falls behind", watchClosesWhenTheWatcherFallsBehind},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, c) })
	}
}

func conformance(t *testing.T, c *cluster) {
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++ // each subtest gets its own home namespace: an empty store
		return c.store(t, crdstore.Config{Namespace: fmt.Sprintf("conformance-%d", n)})
	})
}

func TestConfigValidate(t *testing.T) {
	if _, err := crdstore.New(crdstore.Config{Namespace: "atoll-system"}); err == nil || !strings.Contains(err.Error(), "Client") {
		t.Errorf("no client: got %v, want an error naming Client", err)
	}
	c := crdstore.Config{Client: dynamic.New(nil), Namespace: "Atoll_System"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"Atoll_System"`) {
		t.Errorf("bad namespace: got %v, want an error naming it", err)
	}
}
