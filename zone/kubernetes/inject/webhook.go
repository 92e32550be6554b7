package inject

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// DefaultWebhookName is the MutatingWebhookConfiguration the chart
// installs and the zone's RBAC lets it keep.
const DefaultWebhookName = "atoll-sidecar-injector"

// WebhookConfiguration is the recommended MutatingWebhookConfiguration
// calling the injector at cc:
//
//   - pods, on CREATE only (a pod's containers cannot change afterwards);
//   - namespaceSelector: namespaces labelled atoll.io/sidecar-injection:
//     enabled, so nothing outside the mesh waits on the zone;
//   - objectSelector: pods not labelled atoll.io/sidecar-injection:
//     disabled, which the zone's own pods are, so a zone never waits on
//     itself;
//   - failurePolicy Fail: a mesh pod created while no zone answers is
//     refused (its ReplicaSet retries) rather than started without its
//     sidecar, outside the mesh;
//   - sideEffects None (dry-run requests are answered too), reinvocation
//     IfNeeded, timeout 10s.
func WebhookConfiguration(name string, cc admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.MutatingWebhookConfiguration {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "sidecar-injector.atoll.io",
			ClientConfig: cc,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: kubernetes.SidecarInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{kubernetes.Enabled}}}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: kubernetes.SidecarInjection, Operator: metav1.LabelSelectorOpNotIn, Values: []string{kubernetes.Disabled}}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ReinvocationPolicy:      &reinvoke,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}
