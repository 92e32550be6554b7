package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/atoll-mesh/atoll/test/zonerbac"
)

// TestZoneRBACIsTheTestedRules checks the rendered zone grants exactly the
// rules test/zonerbac grants in the tests that run the zone (the files of
// charts/atoll/files/zone-rbac), to the ServiceAccount its Deployment runs
// as, the Role in the zone's namespace.
func TestZoneRBACIsTheTestedRules(t *testing.T) {
	want, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	objs := variants[1].objects(t)
	dep := Find(objs, "Deployment", Release)
	if dep == nil {
		t.Fatal("the zone renders no Deployment " + Release)
	}
	sa, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName")
	if Find(objs, "ServiceAccount", sa) == nil {
		t.Fatalf("the Deployment runs as ServiceAccount %q, which the chart does not render", sa)
	}

	var cluster, namespaced []rbacv1.PolicyRule
	var clusterRole, role string
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			if clusterRole != "" {
				t.Fatal("the zone renders two ClusterRoles")
			}
			clusterRole = o.GetName()
			cluster = rules(t, o)
		case "Role":
			if role != "" {
				t.Fatal("the zone renders two Roles")
			}
			if o.GetNamespace() != Namespace {
				t.Fatalf("the Role is in %q, not the zone's namespace %q", o.GetNamespace(), Namespace)
			}
			role = o.GetName()
			namespaced = rules(t, o)
		}
	}
	if !reflect.DeepEqual(cluster, want.Cluster) {
		t.Errorf("the ClusterRole's rules differ from zonerbac's:\n got %+v\nwant %+v", cluster, want.Cluster)
	}
	if !reflect.DeepEqual(namespaced, want.Namespace) {
		t.Errorf("the Role's rules differ from zonerbac's:\n got %+v\nwant %+v", namespaced, want.Namespace)
	}

	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: Namespace}
	for kind, roleName := range map[string]string{"ClusterRoleBinding": clusterRole, "RoleBinding": role} {
		var found bool
		for _, o := range objs {
			if o.GetKind() != kind {
				continue
			}
			var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
			fromUnstructured(t, o, &b)
			if b.RoleRef.Name == roleName && reflect.DeepEqual(b.Subjects, []rbacv1.Subject{subject}) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s binds %q to ServiceAccount %s/%s alone", kind, roleName, Namespace, sa)
		}
	}
}

// TestZoneWebhookIsTheInjectorFile checks the rendered
// MutatingWebhookConfiguration is files/injector's, pointed at the
// release's Service, and keeps the name the zone's ClusterRole may update.
func TestZoneWebhookIsTheInjectorFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(Dir, "files", "injector", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := yaml.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	objs := variants[1].objects(t)
	got := Find(objs, "MutatingWebhookConfiguration", "atoll-sidecar-injector")
	if got == nil {
		t.Fatal("the zone with the injector renders no MutatingWebhookConfiguration atoll-sidecar-injector")
	}
	hooks, _, _ := unstructured.NestedSlice(got.Object, "webhooks")
	for _, h := range hooks {
		svc, _, _ := unstructured.NestedMap(h.(map[string]any), "clientConfig", "service")
		if svc["name"] != Release || svc["namespace"] != Namespace || svc["port"] != int64(5443) {
			t.Errorf("webhook %v calls %v, not the release's Service %s/%s port 5443", h.(map[string]any)["name"], svc, Namespace, Release)
		}
		if Find(objs, "Service", Release) == nil {
			t.Errorf("the webhook's Service %s is not rendered", Release)
		}
	}
	// Apart from the Service and the labels, the file as it is.
	wantHooks, _, _ := unstructured.NestedSlice(want, "webhooks")
	for i := range wantHooks {
		if i >= len(hooks) {
			break
		}
		for _, m := range []map[string]any{wantHooks[i].(map[string]any), hooks[i].(map[string]any)} {
			unstructured.RemoveNestedField(m, "clientConfig", "service", "name")
			unstructured.RemoveNestedField(m, "clientConfig", "service", "namespace")
			unstructured.RemoveNestedField(m, "clientConfig", "service", "port")
		}
	}
	gotJSON, _ := yaml.Marshal(hooks)
	wantJSON, _ := yaml.Marshal(wantHooks)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("the rendered webhooks differ from files/injector's:\n got %s\nwant %s", gotJSON, wantJSON)
	}

	if Find(variants[4].objects(t), "MutatingWebhookConfiguration", "atoll-sidecar-injector") != nil {
		t.Error("zone.injector.enabled=false still renders the MutatingWebhookConfiguration")
	}
}

func rules(t *testing.T, o *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var r rbacv1.ClusterRole // a Role has the same rules
	fromUnstructured(t, o, &r)
	if len(r.Rules) == 0 {
		t.Fatalf("%s %s has no rules", o.GetKind(), o.GetName())
	}
	return r.Rules
}

func fromUnstructured(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}
