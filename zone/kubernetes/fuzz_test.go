package kubernetes_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// Whatever the annotations, labels, names and ports, conversion does not
// panic, every Dataplane it returns validates and carries the pod's name
// and IP, every problem says what is wrong, and service-upstream patches
// are JSON that leave nothing more to do.
func FuzzDataplaneFor(f *testing.F) {
	f.Add("kong", "kong-0", "enabled", "", "enabled", "", "", "app", "kong", "kong-proxy", "http", "http", "http", "10.0.0.1", int32(80), true)
	f.Add("shop", "web-1", "", "enabled", "", "payments", "retail", "app", "web", "web", "http", "grpc", "grpc", "fd00::1", int32(8080), false)
	f.Add("shop", "web.1", "true", "yes", "disabled", "Bad", "a.b", "atoll.io/service", "x", "web", "", "", "kubernetes.io/h2c", "", int32(0), true)
	f.Add("Shop", "WEB", "", "", "enabled", "", "", "", "", "web", "9", "9", "", "not-an-ip", int32(70000), false)
	f.Fuzz(func(t *testing.T, nsName, podName, gatewayValue, podInjection, nsInjection, podMesh, nsMesh,
		labelKey, labelValue, svcName, targetName, containerPortName, appProtocol, podIP string, svcPort int32, isReady bool) {
		ns := namespace(nsName, map[string]string{kubernetes.SidecarInjection: nsInjection}, map[string]string{})
		if nsMesh != "" {
			ns.Annotations[kubernetes.MeshAnnotation] = nsMesh
		}
		pod := newPod(nsName, podName, map[string]string{labelKey: labelValue, "app": "x"}, func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: containerPortName, ContainerPort: svcPort})
			p.Status.PodIP = podIP
		})
		for k, v := range map[string]string{kubernetes.GatewayAnnotation: gatewayValue, kubernetes.SidecarInjection: podInjection, kubernetes.MeshAnnotation: podMesh} {
			if v != "" {
				annotated(k, v)(pod)
			}
		}
		if !isReady {
			ready(corev1.ConditionFalse)(pod)
		}
		target := intstr.FromString(targetName)
		if targetName == "" {
			target = intstr.FromInt32(svcPort)
		}
		services := []*corev1.Service{
			service(nsName, svcName, map[string]string{labelKey: labelValue}, port{port: svcPort, target: target, app: appProtocol}, tcp(svcPort+1, intstr.FromInt32(svcPort))),
			service(nsName, svcName+"-2", map[string]string{"app": "x"}, port{port: svcPort, target: intstr.FromString(containerPortName), app: appProtocol}),
		}
		dp, problems := kubernetes.DataplaneFor(kubernetes.Input{Zone: "zone-1", Namespace: ns, Pod: pod, Services: services})
		for _, p := range problems {
			if p.Reason == "" || p.Message == "" {
				t.Errorf("problem without reason or message: %+v", p)
			}
			// Objects the API server accepts (DNS-label names, an IP)
			// always convert: only invalid objects make an invalid
			// Dataplane, whatever the annotations and labels say.
			_, ipErr := netip.ParseAddr(podIP)
			if p.Reason == kubernetes.ReasonInvalidDataplane && ipErr == nil && resource.CheckName(nsName) == "" &&
				resource.CheckName(svcName) == "" && resource.CheckName(svcName+"-2") == "" {
				t.Errorf("valid objects make an invalid Dataplane: %s", p.Message)
			}
		}
		if dp != nil {
			if err := resource.Validate(dp); err != nil {
				t.Fatalf("invalid Dataplane: %v", err)
			}
			if dp.Meta.Name != kubernetes.DataplaneName(nsName, podName) {
				t.Errorf("name %q, want %q", dp.Meta.Name, kubernetes.DataplaneName(nsName, podName))
			}
			if got := dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetAddress(); got != podIP {
				t.Errorf("address %q, want the pod IP %q", got, podIP)
			}
			if (dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetGateway() != nil) != (gatewayValue == kubernetes.Enabled) {
				t.Errorf("gateway annotation %q, Dataplane %v", gatewayValue, dp.Spec)
			}
		}
		for _, svc := range services {
			svc.ResourceVersion = labelValue
			svc.Annotations = map[string]string{labelKey: targetName}
			patch, needed := kubernetes.ServiceUpstreamPatch(svc, true)
			if !needed {
				continue
			}
			var p struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(patch, &p); err != nil {
				t.Fatalf("patch %s: %v", patch, err)
			}
			for k, v := range p.Metadata.Annotations {
				if _, had := svc.Annotations[k]; had || v != "true" {
					t.Errorf("patch sets %s: %q over the Service's %v", k, v, svc.Annotations)
				}
				svc.Annotations[k] = v
			}
			if again, needed := kubernetes.ServiceUpstreamPatch(svc, true); needed {
				t.Errorf("a second patch after the first: %s", again)
			}
		}
	})
}
