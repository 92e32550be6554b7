package chart

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// TestServerSideDryRunApply applies every object of every variant to a real
// kube-apiserver with a server-side apply in dry-run mode: the API server
// validates each one (schemas, unknown fields, RBAC escalation, webhook
// and PodDisruptionBudget rules) without keeping it. The CRDs are installed
// for real first, as helm does from crds/.
func TestServerSideDryRunApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, dyn := StartCluster(ctx, t)
	cfg := env.Config()
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(disc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			for _, obj := range v.objects(t) {
				gvk := obj.GroupVersionKind()
				m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s %s: the API server does not serve this kind: %v", gvk, obj.GetName(), err)
				}
				var client dynamic.ResourceInterface = dyn.Resource(m.Resource)
				if ns := obj.GetNamespace(); ns != "" {
					client = dyn.Resource(m.Resource).Namespace(ns)
				}
				got, err := client.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{
					FieldManager: "atoll-chart-test", Force: true, DryRun: []string{metav1.DryRunAll},
				})
				if err != nil {
					t.Errorf("%s %s/%s refused: %v", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
					continue
				}
				if got.GetName() != obj.GetName() || got.GetKind() != obj.GetKind() {
					t.Errorf("dry-run apply of %s %s returned %s %s", gvk.Kind, obj.GetName(), got.GetKind(), got.GetName())
				}
			}
		})
	}
}
