package kubernetes_test

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

func TestServiceUpstreamPatch(t *testing.T) {
	svc := func(typ corev1.ServiceType, rv string, annotations map[string]string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", ResourceVersion: rv, Annotations: annotations},
			Spec:       corev1.ServiceSpec{Type: typ, Selector: web, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
	}
	both := `{"metadata":{"annotations":{"ingress.kubernetes.io/service-upstream":"true","nginx.ingress.kubernetes.io/service-upstream":"true"},"resourceVersion":"42"}}`
	cases := []struct {
		name   string
		svc    *corev1.Service
		inMesh bool
		want   string // "" means no patch
	}{
		{"ClusterIP in a mesh namespace", svc(corev1.ServiceTypeClusterIP, "42", nil), true, both},
		{"NodePort", svc(corev1.ServiceTypeNodePort, "42", nil), true, both},
		{"LoadBalancer", svc(corev1.ServiceTypeLoadBalancer, "42", map[string]string{"other": "x"}), true, both},
		{"no type", svc("", "42", nil), true, both},
		{"no resourceVersion", svc("", "", nil), true,
			`{"metadata":{"annotations":{"ingress.kubernetes.io/service-upstream":"true","nginx.ingress.kubernetes.io/service-upstream":"true"}}}`},
		{"not in the mesh", svc(corev1.ServiceTypeClusterIP, "42", nil), false, ""},
		{"ExternalName", svc(corev1.ServiceTypeExternalName, "42", nil), true, ""},
		{"ignored", svc(corev1.ServiceTypeClusterIP, "42", map[string]string{kubernetes.IgnoreAnnotation: "true"}), true, ""},
		{"ignore other than true", svc(corev1.ServiceTypeClusterIP, "42", map[string]string{kubernetes.IgnoreAnnotation: "false"}), true, both},
		{"both present: nothing to do", svc(corev1.ServiceTypeClusterIP, "42", map[string]string{
			kubernetes.ServiceUpstream: "true", kubernetes.NginxServiceUpstream: "true"}), true, ""},
		{"user-set values stand", svc(corev1.ServiceTypeClusterIP, "42", map[string]string{
			kubernetes.ServiceUpstream: "false", kubernetes.NginxServiceUpstream: ""}), true, ""},
		{"only the missing one", svc(corev1.ServiceTypeClusterIP, "42", map[string]string{kubernetes.ServiceUpstream: "false"}), true,
			`{"metadata":{"annotations":{"nginx.ingress.kubernetes.io/service-upstream":"true"},"resourceVersion":"42"}}`},
		{"being deleted", func() *corev1.Service {
			s := svc(corev1.ServiceTypeClusterIP, "42", nil)
			s.DeletionTimestamp = &metav1.Time{}
			return s
		}(), true, ""},
		{"nil", nil, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			patch, needed := kubernetes.ServiceUpstreamPatch(c.svc, c.inMesh)
			if needed != (c.want != "") || string(patch) != c.want {
				t.Fatalf("patch = %s (needed %v), want %q", patch, needed, c.want)
			}
			if !needed {
				return
			}
			// Applied, the patch leaves nothing more to do and keeps
			// every annotation the Service had.
			applied := applyMergePatch(t, c.svc, patch)
			if again, needed := kubernetes.ServiceUpstreamPatch(applied, c.inMesh); needed {
				t.Errorf("after the patch another is needed: %s", again)
			}
			for k, v := range c.svc.Annotations {
				if applied.Annotations[k] != v {
					t.Errorf("annotation %s = %q after the patch, was %q", k, applied.Annotations[k], v)
				}
			}
		})
	}
}

// applyMergePatch applies a JSON merge patch of metadata.annotations the
// way the API server does for these patches: maps merge key by key.
func applyMergePatch(t *testing.T, svc *corev1.Service, patch []byte) *corev1.Service {
	t.Helper()
	var p struct {
		Metadata struct {
			Annotations     map[string]string `json:"annotations"`
			ResourceVersion string            `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		t.Fatalf("patch %s is not JSON: %v", patch, err)
	}
	if p.Metadata.ResourceVersion != svc.ResourceVersion {
		t.Errorf("patch resourceVersion %q, the Service's is %q", p.Metadata.ResourceVersion, svc.ResourceVersion)
	}
	out := svc.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	for k, v := range p.Metadata.Annotations {
		out.Annotations[k] = v
	}
	return out
}
