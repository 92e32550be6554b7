// Package zonerbac reads the RBAC rules a Kubernetes zone needs from
// charts/atoll/files/zone-rbac (the files the Helm chart includes) and
// grants exactly those rules to a ServiceAccount, so tests run the zone
// under the same permissions as an installed one: a verb missing from the
// files fails a test.
//
// Usage:
//
//	rules, err := zonerbac.Load(zonerbac.Dir("../.."))
//	if err != nil { ... }
//	if err := zonerbac.Grant(ctx, admin, "atoll-system", "atoll-zone", rules); err != nil { ... }
//	kubeconfig := kubeenv.WriteKubeconfig(t, env.ServiceAccountConfig(t, "atoll-system", "atoll-zone"))
package zonerbac

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The files of Dir: the ClusterRole's rules and the Role's rules (the Role
// lives in the zone's system namespace).
const (
	ClusterRulesFile   = "clusterrole-rules.yaml"
	NamespaceRulesFile = "role-rules.yaml"
)

// Dir is the rules' directory in the repository whose root is root.
func Dir(root string) string {
	return filepath.Join(root, "charts", "atoll", "files", "zone-rbac")
}

// Rules are the permissions of a zone.
type Rules struct {
	// Cluster are granted in every namespace, by a ClusterRole.
	Cluster []rbacv1.PolicyRule
	// Namespace are granted in the zone's system namespace, by a Role.
	Namespace []rbacv1.PolicyRule
}

// Load reads and checks the rules files of dir.
func Load(dir string) (Rules, error) {
	cluster, err := loadFile(filepath.Join(dir, ClusterRulesFile))
	if err != nil {
		return Rules{}, err
	}
	namespace, err := loadFile(filepath.Join(dir, NamespaceRulesFile))
	if err != nil {
		return Rules{}, err
	}
	return Rules{Cluster: cluster, Namespace: namespace}, nil
}

func loadFile(path string) ([]rbacv1.PolicyRule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("zone RBAC rules: %w", err)
	}
	rules, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("zone RBAC rules %s: %w", path, err)
	}
	return rules, nil
}

// Parse decodes a YAML list of PolicyRules, refusing unknown fields, and
// checks each rule with Check.
func Parse(data []byte) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		return nil, fmt.Errorf("not a YAML list of PolicyRules (apiGroups, resources, verbs): %w", err)
	}
	if len(rules) == 0 {
		return nil, errors.New("no rules: the file must list the zone's PolicyRules")
	}
	var errs []error
	for i, r := range rules {
		if err := Check(r); err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i+1, err))
		}
	}
	return rules, errors.Join(errs...)
}

// knownVerbs are the verbs a resource rule may name.
var knownVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// Check refuses a rule that is not a plain, narrow resource rule: each
// rule names its API groups, resources and verbs, no wildcard anywhere, no
// verb beyond the usual ones (no bind, escalate or impersonate), no
// non-resource URLs and no Secrets.
func Check(r rbacv1.PolicyRule) error {
	var errs []error
	if len(r.APIGroups) == 0 || len(r.Resources) == 0 || len(r.Verbs) == 0 {
		errs = append(errs, errors.New("apiGroups, resources and verbs must each name at least one entry"))
	}
	if len(r.NonResourceURLs) > 0 {
		errs = append(errs, fmt.Errorf("nonResourceURLs %v: the zone needs no non-resource URL beyond discovery, which every authenticated user has", r.NonResourceURLs))
	}
	for field, list := range map[string][]string{"apiGroups": r.APIGroups, "resources": r.Resources,
		"verbs": r.Verbs, "resourceNames": r.ResourceNames} {
		for _, v := range list {
			if strings.Contains(v, "*") {
				errs = append(errs, fmt.Errorf("%s %q is a wildcard: name exactly what the zone uses", field, v))
			}
		}
	}
	for _, v := range r.Verbs {
		if !strings.Contains(v, "*") && !slices.Contains(knownVerbs, v) {
			errs = append(errs, fmt.Errorf("verb %q: use one of %s", v, strings.Join(knownVerbs, ", ")))
		}
	}
	for _, res := range r.Resources {
		if res == "secrets" || strings.HasPrefix(res, "secrets/") {
			errs = append(errs, fmt.Errorf("resource %q: the zone reads no Secrets", res))
		}
	}
	return errors.Join(errs...)
}

// Without returns a copy of r with verb removed from the rules of group
// and resource, for tests that prove the verb is needed. It fails when no
// rule grants it, so such a test cannot pass by removing nothing.
func (r Rules) Without(group, resource, verb string) (Rules, error) {
	found := false
	strip := func(in []rbacv1.PolicyRule) []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for _, rule := range in {
			rule = *rule.DeepCopy()
			if !slices.Contains(rule.APIGroups, group) || !slices.Contains(rule.Resources, resource) || !slices.Contains(rule.Verbs, verb) {
				out = append(out, rule)
				continue
			}
			found = true
			// Keep the verb for the rule's other groups and resources.
			rest := rule.DeepCopy()
			rest.Verbs = slices.DeleteFunc(rest.Verbs, func(v string) bool { return v == verb })
			if len(rest.Verbs) > 0 {
				out = append(out, *rest)
			}
			others := rule.DeepCopy()
			others.Resources = slices.DeleteFunc(others.Resources, func(v string) bool { return v == resource })
			if len(others.Resources) > 0 {
				others.Verbs = []string{verb}
				out = append(out, *others)
			}
			if len(rule.APIGroups) > 1 {
				otherGroups := rule.DeepCopy()
				otherGroups.APIGroups = slices.DeleteFunc(otherGroups.APIGroups, func(v string) bool { return v == group })
				otherGroups.Resources = []string{resource}
				otherGroups.Verbs = []string{verb}
				out = append(out, *otherGroups)
			}
		}
		return out
	}
	out := Rules{Cluster: strip(r.Cluster), Namespace: strip(r.Namespace)}
	if !found {
		return Rules{}, fmt.Errorf("no rule grants %s on %s in group %q: nothing to remove", verb, resource, group)
	}
	return out, nil
}
