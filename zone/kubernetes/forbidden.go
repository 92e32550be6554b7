package kubernetes

import (
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// RBACRules is where the chart keeps the rules of the zone's ClusterRole
// and Role: the least the controller and the store need.
const RBACRules = "charts/atoll/files/zone-rbac"

// explainForbidden says what to do about an error the API server answered
// 403 Forbidden: the zone's credentials lack a rule. Other errors are
// returned as they are.
func explainForbidden(err error) error {
	if !apierrors.IsForbidden(err) || strings.Contains(err.Error(), RBACRules) {
		return err // not a 403, or explained already (by the store)
	}
	return fmt.Errorf("%w: bind the zone's ServiceAccount to the ClusterRole and Role of charts/atoll (rules in %s)", err, RBACRules)
}
