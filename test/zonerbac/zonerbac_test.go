package zonerbac_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/zonerbac"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// TestChartRules checks the rules the chart ships: they parse strictly
// into PolicyRules, name no wildcard, no Secrets, no escalating verb, and
// cover what the zone does.
func TestChartRules(t *testing.T) {
	rules, err := zonerbac.Load(zonerbac.Dir(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		rules                 []rbacv1.PolicyRule
		group, resource, verb string
	}{
		{rules.Cluster, "", "pods", "watch"},
		{rules.Cluster, "", "services", "patch"},
		{rules.Cluster, "", "namespaces", "get"},
		{rules.Cluster, "", "events", "create"},
		{rules.Cluster, "atoll.io", "dataplanes", "create"},
		{rules.Cluster, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update"},
		{rules.Cluster, "authentication.k8s.io", "tokenreviews", "create"},
		{rules.Namespace, "atoll.io", "zoneingresses", "update"},
		{rules.Namespace, "coordination.k8s.io", "leases", "update"},
	} {
		if !grants(want.rules, want.group, want.resource, want.verb) {
			t.Errorf("the rules do not grant %s on %s.%s, which the zone uses", want.verb, want.resource, want.group)
		}
	}
	if grants(rules.Namespace, "", "pods", "list") || grants(rules.Cluster, "atoll.io", "meshes", "get") {
		t.Error("a rule is in the wrong file: pods are watched cluster-wide, meshes live in the system namespace")
	}
}

func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// TestErrorsNameTheRules keeps the directory that Forbidden errors of the
// store and the controller name equal to where the rules are.
func TestErrorsNameTheRules(t *testing.T) {
	dir := filepath.ToSlash(zonerbac.Dir(""))
	if _, err := os.Stat(zonerbac.Dir(filepath.Join("..", ".."))); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"crdstore.RBACRules": crdstore.RBACRules, "kubernetes.RBACRules": kubernetes.RBACRules} {
		if got != dir {
			t.Errorf("%s = %q, want %q", name, got, dir)
		}
	}
}

// TestChartRulesAreExplained keeps a comment saying why above every rule.
func TestChartRulesAreExplained(t *testing.T) {
	for _, file := range []string{zonerbac.ClusterRulesFile, zonerbac.NamespaceRulesFile} {
		data, err := os.ReadFile(filepath.Join(zonerbac.Dir(filepath.Join("..", "..")), file))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			if strings.HasPrefix(line, "- ") && (i == 0 || !strings.HasPrefix(lines[i-1], "#")) {
				t.Errorf("%s:%d: the rule has no comment above it saying why the zone needs it", file, i+1)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"wildcard verb", "- apiGroups: ['']\n  resources: [pods]\n  verbs: ['*']\n", `verbs "*" is a wildcard`},
		{"wildcard resource", "- apiGroups: [atoll.io]\n  resources: ['*']\n  verbs: [get]\n", `resources "*" is a wildcard`},
		{"wildcard group", "- apiGroups: ['*']\n  resources: [pods]\n  verbs: [get]\n", `apiGroups "*" is a wildcard`},
		{"secrets", "- apiGroups: ['']\n  resources: [secrets]\n  verbs: [get]\n", `"secrets": the zone reads no Secrets`},
		{"escalate", "- apiGroups: [rbac.authorization.k8s.io]\n  resources: [clusterroles]\n  verbs: [escalate]\n", `verb "escalate"`},
		{"no group", "- resources: [pods]\n  verbs: [get]\n", "apiGroups, resources and verbs"},
		{"non-resource URL", "- nonResourceURLs: [/metrics]\n  verbs: [get]\n", "nonResourceURLs"},
		{"unknown field", "- apiGroups: ['']\n  resource: [pods]\n  verbs: [get]\n", "not a YAML list of PolicyRules"},
		{"not a list", "apiGroups: ['']\n", "not a YAML list of PolicyRules"},
		{"empty", "# nothing\n", "no rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := zonerbac.Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestWithout(t *testing.T) {
	rules := zonerbac.Rules{
		Cluster: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "patch"}}},
		Namespace: []rbacv1.PolicyRule{{APIGroups: []string{"atoll.io"}, Resources: []string{"meshes", "viptables"},
			Verbs: []string{"get", "delete"}}},
	}
	less, err := rules.Without("", "services", "patch")
	if err != nil {
		t.Fatal(err)
	}
	if grants(less.Cluster, "", "services", "patch") || !grants(less.Cluster, "", "services", "get") {
		t.Errorf("without patch on services: %+v, want get only", less.Cluster)
	}
	if grants(rules.Cluster, "", "services", "patch") != true {
		t.Error("Without changed the rules it was called on")
	}

	less, err = rules.Without("atoll.io", "viptables", "delete")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		resource, verb string
		want           bool
	}{{"viptables", "delete", false}, {"viptables", "get", true}, {"meshes", "delete", true}, {"meshes", "get", true}} {
		if got := grants(less.Namespace, "atoll.io", c.resource, c.verb); got != c.want {
			t.Errorf("without delete on viptables: %s on %s granted = %v, want %v (%+v)", c.verb, c.resource, got, c.want, less.Namespace)
		}
	}

	if _, err := rules.Without("", "pods", "list"); err == nil {
		t.Error("Without a verb no rule grants succeeded, want an error")
	}
}
