package kubernetes_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

var (
	web     = map[string]string{"app": "web"}
	num     = intstr.FromInt32
	named   = intstr.FromString
	unset   = intstr.IntOrString{}
	webTags = func(svc string, port string, extra map[string]string) map[string]string {
		t := tagsOf("shop", svc, svc+"_shop_svc_"+port, map[string]string{"app": "web"})
		for k, v := range extra {
			t[k] = v
		}
		return t
	}
)

func inbounds(in ...*v1alpha1.Dataplane_Networking_Inbound) *v1alpha1.Dataplane_Networking {
	return &v1alpha1.Dataplane_Networking{Inbound: in}
}

func TestWorkloadDataplane(t *testing.T) {
	ns := meshNS("shop")
	webSvc := service("shop", "web", web, tcp(80, num(8080)))
	cases := []struct {
		name     string
		ns       *corev1.Namespace
		pod      *corev1.Pod
		services []*corev1.Service
		want     *resource.Resource // nil: no Dataplane
		problems []string
		text     []string
	}{
		{
			name: "numeric target port", ns: ns, pod: newPod("shop", "web-1", web), services: []*corev1.Service{webSvc},
			want: wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "named target port", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, tcp(80, named("http")))},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "unset target port is the service port", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, tcp(8000, unset))},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8000, true, webTags("web", "8000", nil)))),
		},
		{
			name: "named port of a sidecar container", ns: ns,
			pod: newPod("shop", "web-1", web, func(p *corev1.Pod) {
				always := corev1.ContainerRestartPolicyAlways
				p.Spec.InitContainers = []corev1.Container{
					{Name: "setup", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 7000}}},
					{Name: "sidecar", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}}},
				}
			}),
			services: []*corev1.Service{service("shop", "web", web, tcp(90, named("metrics")))},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(9090, true, webTags("web", "90", nil)))),
		},
		{
			name: "unresolvable named port is skipped with a problem", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, tcp(80, named("http")), tcp(81, named("grpc")))},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
			problems: []string{kubernetes.ReasonUnresolvedPort}, text: []string{`Service "web" port 81 sends to targetPort "grpc"`},
		},
		{
			name: "a named UDP container port does not serve a TCP service port", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, tcp(53, named("dns")))},
			problems: []string{kubernetes.ReasonUnresolvedPort},
		},
		{
			name: "only unresolvable ports: no Dataplane, a problem", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, tcp(81, named("grpc")))},
			problems: []string{kubernetes.ReasonUnresolvedPort}, text: []string{"no container of the pod declares"},
		},
		{
			name: "UDP service ports are not inbounds", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web, port{port: 53, target: num(5353), proto: corev1.ProtocolUDP}, tcp(80, num(8080)))},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "several Services, by name, ports as listed", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{
				service("shop", "web", web, tcp(80, num(8080))),
				service("shop", "admin", map[string]string{"app": "web"}, tcp(9000, named("admin")), tcp(7000, num(7001))),
			},
			want: wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(
				inbound(9901, true, webTags("admin", "9000", nil)),
				inbound(7001, true, webTags("admin", "7000", nil)),
				inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "two Service ports on one pod port: the first keeps it", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{
				service("shop", "web-internal", web, tcp(80, named("http"))),
				service("shop", "web", web, tcp(80, num(8080))),
			},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
			problems: []string{kubernetes.ReasonPortConflict}, text: []string{`Service "web-internal" port 80 and web_shop_svc_80 both send to pod port 8080`},
		},
		{
			name: "a headless Service comes after those with a ClusterIP, and yields a pod port silently", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{
				headlessService(service("shop", "a-headless", web, tcp(80, num(8080)), tcp(9901, unset))),
				service("shop", "web", web, tcp(80, num(8080))),
			},
			want: wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(
				inbound(8080, true, webTags("web", "80", nil)),
				inbound(9901, true, webTags("a-headless", "9901", nil)))),
		},
		{
			name: "selector not matching", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "api", map[string]string{"app": "api"}, tcp(80, num(8080))),
				service("shop", "web-v2", map[string]string{"app": "web", "version": "v2"}, tcp(80, num(8080)))},
		},
		{
			name: "a Service of another namespace does not select", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("other", "web", web, tcp(80, num(8080)))},
		},
		{
			name: "a Service without selector selects nothing", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", nil, tcp(80, num(8080))), nil},
		},
		{
			name: "an ExternalName Service selects nothing", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{func() *corev1.Service {
				s := service("shop", "web", web, tcp(80, num(8080)))
				s.Spec.Type = corev1.ServiceTypeExternalName
				s.Spec.ExternalName = "backend.mesh"
				return s
			}()},
		},
		{
			name: "not ready: inbounds unhealthy", ns: ns, pod: newPod("shop", "web-1", web, ready(corev1.ConditionFalse)),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, false, webTags("web", "80", nil)))),
		},
		{
			name: "readiness unknown: unhealthy", ns: ns, pod: newPod("shop", "web-1", web, ready(corev1.ConditionUnknown)),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, false, webTags("web", "80", nil)))),
		},
		{
			name: "no Ready condition yet: unhealthy", ns: ns,
			pod:      newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.Conditions = nil }),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, false, webTags("web", "80", nil)))),
		},
		{
			name: "no pod IP yet", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.PodIP = "" }),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "IPv6 pod", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.PodIP = "fd00::7" }),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "fd00::7", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "terminating", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "succeeded", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "failed", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "pending with an IP", ns: ns, pod: newPod("shop", "web-1", web, ready(corev1.ConditionFalse), func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, false, webTags("web", "80", nil)))),
		},
		{
			name: "namespace not in the mesh", ns: namespace("shop", nil, nil), pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "no namespace object reads as not in the mesh", pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "namespace label other than enabled", ns: namespace("shop", map[string]string{kubernetes.SidecarInjection: "true"}, nil),
			pod: newPod("shop", "web-1", web), services: []*corev1.Service{webSvc},
		},
		{
			name: "pod opts in outside a mesh namespace", ns: namespace("shop", nil, nil),
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.SidecarInjection, kubernetes.Enabled)),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "pod opts out of a mesh namespace", ns: ns,
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.SidecarInjection, kubernetes.Disabled)),
			services: []*corev1.Service{webSvc},
		},
		{
			name: "bad sidecar-injection annotation", ns: ns,
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.SidecarInjection, "yes")),
			services: []*corev1.Service{webSvc},
			problems: []string{kubernetes.ReasonInvalidAnnotation}, text: []string{`atoll.io/sidecar-injection: "yes" is not allowed: use "enabled" or "disabled"`},
		},
		{
			name: "mesh from the pod annotation", ns: ns,
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.MeshAnnotation, "payments")),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("payments", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "mesh from the namespace annotation", ns: namespace("shop", ns.Labels, map[string]string{kubernetes.MeshAnnotation: "retail"}),
			pod:      newPod("shop", "web-1", web),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("retail", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "the pod's mesh annotation wins", ns: namespace("shop", ns.Labels, map[string]string{kubernetes.MeshAnnotation: "retail"}),
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.MeshAnnotation, "payments")),
			services: []*corev1.Service{webSvc},
			want:     wantDataplane("payments", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true, webTags("web", "80", nil)))),
		},
		{
			name: "invalid mesh name", ns: ns,
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.MeshAnnotation, "Pay_Ments")),
			services: []*corev1.Service{webSvc},
			problems: []string{kubernetes.ReasonInvalidAnnotation}, text: []string{`pod annotation atoll.io/mesh: mesh name "Pay_Ments" is invalid`},
		},
		{
			name: "empty mesh annotation", ns: ns,
			pod:      newPod("shop", "web-1", web, annotated(kubernetes.MeshAnnotation, "")),
			services: []*corev1.Service{webSvc},
			problems: []string{kubernetes.ReasonInvalidAnnotation}, text: []string{"mesh name is required"},
		},
		{
			name: "invalid mesh name on the namespace", ns: namespace("shop", ns.Labels, map[string]string{kubernetes.MeshAnnotation: "a.b"}),
			pod:      newPod("shop", "web-1", web),
			services: []*corev1.Service{webSvc},
			problems: []string{kubernetes.ReasonInvalidAnnotation}, text: []string{"namespace annotation atoll.io/mesh"},
		},
		{
			name: "appProtocol becomes atoll.io/protocol", ns: ns, pod: newPod("shop", "web-1", web),
			services: []*corev1.Service{service("shop", "web", web,
				port{port: 80, target: num(8080), app: "http"},
				port{port: 81, target: num(8081), app: "kubernetes.io/h2c"},
				port{port: 82, target: num(8082), app: "grpc"},
				port{port: 83, target: num(8083), app: "kubernetes.io/ws"})},
			want: wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(
				inbound(8080, true, webTags("web", "80", map[string]string{resource.ProtocolTag: "http"})),
				inbound(8081, true, webTags("web", "81", map[string]string{resource.ProtocolTag: "http2"})),
				inbound(8082, true, webTags("web", "82", map[string]string{resource.ProtocolTag: "grpc"})),
				inbound(8083, true, webTags("web", "83", nil)))),
		},
		{
			name: "pod labels that may not be tags are left out", ns: ns,
			pod: newPod("shop", "web-1", map[string]string{
				"app": "web", "app.kubernetes.io/version": "1.2.3", "pod-template-hash": "7f9c6d", "empty": "",
				"atoll.io/service": "spoofed", "k8s.atoll.io/namespace": "spoofed", "controller-revision-hash": "web-5d8",
				"statefulset.kubernetes.io/pod-name": "web-1", "apps.kubernetes.io/pod-index": "1",
			}),
			services: []*corev1.Service{webSvc},
			want: wantDataplane("default", "shop", "web-1", "10.1.2.3", inbounds(inbound(8080, true,
				webTags("web", "80", map[string]string{"app.kubernetes.io/version": "1.2.3"})))),
		},
		{
			name: "a pod IP that is not an IP", ns: ns, pod: newPod("shop", "web-1", web, func(p *corev1.Pod) { p.Status.PodIP = "not an ip" }),
			services: []*corev1.Service{webSvc},
			problems: []string{kubernetes.ReasonInvalidDataplane}, text: []string{"networking.address"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, problems := kubernetes.DataplaneFor(kubernetes.Input{Zone: "zone-1", Namespace: c.ns, Pod: c.pod, Services: c.services})
			checkProblems(t, problems, c.problems, c.text)
			checkDataplane(t, got, c.want)
		})
	}
}

func TestGatewayDataplane(t *testing.T) {
	ns := meshNS("kong")
	kong := map[string]string{"app": "kong"}
	proxy := service("kong", "kong-proxy", kong, tcp(443, named("https")), tcp(80, num(8000)))
	gw := func(svc, service string, extra map[string]string) *v1alpha1.Dataplane_Networking {
		tags := tagsOf("kong", svc, service, map[string]string{"app": "kong"})
		for k, v := range extra {
			tags[k] = v
		}
		return &v1alpha1.Dataplane_Networking{Gateway: &v1alpha1.Dataplane_Networking_Gateway{
			Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED, Tags: tags}}
	}
	cases := []struct {
		name     string
		ns       *corev1.Namespace
		pod      *corev1.Pod
		services []*corev1.Service
		want     *resource.Resource
		problems []string
		text     []string
	}{
		{
			name: "gateway tagged after its Service's lowest port, no inbounds", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway), services: []*corev1.Service{proxy},
			want: wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			name: "a gateway's named ports need not resolve", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{service("kong", "kong-proxy", kong, tcp(443, named("nowhere")))},
			want:     wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_443", nil)),
		},
		{
			name: "several Services: the first by name", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{proxy, service("kong", "kong-admin", kong, tcp(8444, num(8444))),
				service("kong", "a-udp-only", kong, port{port: 53, target: num(53), proto: corev1.ProtocolUDP})},
			want: wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-admin", "kong-admin_kong_svc_8444", nil)),
		},
		{
			name: "a Service with a ClusterIP before a headless one", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{headlessService(service("kong", "a-headless", kong, tcp(80, unset))), proxy},
			want:     wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			name: "only a headless Service", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{headlessService(service("kong", "a-headless", kong, tcp(80, unset)))},
			want:     wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("a-headless", "a-headless_kong_svc_80", nil)),
		},
		{
			name: "a gateway not ready is still a gateway", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway, ready(corev1.ConditionFalse)), services: []*corev1.Service{proxy},
			want: wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			name: "gateway in another mesh", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway, annotated(kubernetes.MeshAnnotation, "edge")), services: []*corev1.Service{proxy},
			want: wantDataplane("edge", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			name: "gateway opted in by its pod annotation", ns: namespace("kong", nil, nil),
			pod:      newPod("kong", "kong-0", kong, gateway, annotated(kubernetes.SidecarInjection, kubernetes.Enabled)),
			services: []*corev1.Service{proxy},
			want:     wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			// A gateway has no inbound to speak a protocol on.
			name: "no protocol tag on a gateway", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{service("kong", "kong-proxy", kong, port{port: 80, target: num(8000), app: "http"})},
			want:     wantDataplane("default", "kong", "kong-0", "10.1.2.3", gw("kong-proxy", "kong-proxy_kong_svc_80", nil)),
		},
		{
			name: "no Service selects the gateway", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway), services: []*corev1.Service{service("kong", "other", map[string]string{"app": "x"}, tcp(80, unset))},
			problems: []string{kubernetes.ReasonNoService}, text: []string{`no Service in namespace "kong" selects this gateway pod`},
		},
		{
			name: "only a UDP Service selects the gateway", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway),
			services: []*corev1.Service{service("kong", "dns", kong, port{port: 53, target: num(53), proto: corev1.ProtocolUDP})},
			problems: []string{kubernetes.ReasonNoService},
		},
		{
			name: "gateway without IP yet", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway, func(p *corev1.Pod) { p.Status.PodIP = "" }), services: []*corev1.Service{proxy},
		},
		{
			name: "gateway terminating", ns: ns,
			pod: newPod("kong", "kong-0", kong, gateway, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }), services: []*corev1.Service{proxy},
		},
		{
			name: "gateway outside the mesh", ns: namespace("kong", nil, nil),
			pod: newPod("kong", "kong-0", kong, gateway), services: []*corev1.Service{proxy},
			problems: []string{kubernetes.ReasonGatewayNotInMesh}, text: []string{`label namespace "kong" or annotate the pod atoll.io/sidecar-injection: enabled`},
		},
		{
			name: "gateway opted out of a mesh namespace", ns: ns,
			pod:      newPod("kong", "kong-0", kong, gateway, annotated(kubernetes.SidecarInjection, kubernetes.Disabled)),
			services: []*corev1.Service{proxy},
			problems: []string{kubernetes.ReasonGatewayNotInMesh},
		},
	}
	for _, bad := range []string{"true", "Enabled", "disabled", "", " enabled"} {
		cases = append(cases, struct {
			name     string
			ns       *corev1.Namespace
			pod      *corev1.Pod
			services []*corev1.Service
			want     *resource.Resource
			problems []string
			text     []string
		}{
			name: "gateway annotation " + bad, ns: ns,
			pod: newPod("kong", "kong-0", kong, annotated(kubernetes.GatewayAnnotation, bad)), services: []*corev1.Service{proxy},
			problems: []string{kubernetes.ReasonInvalidAnnotation},
			text:     []string{`annotation atoll.io/gateway: "` + bad + `" is not allowed: use "enabled"`},
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, problems := kubernetes.DataplaneFor(kubernetes.Input{Zone: "zone-1", Namespace: c.ns, Pod: c.pod, Services: c.services})
			checkProblems(t, problems, c.problems, c.text)
			checkDataplane(t, got, c.want)
		})
	}
}

// A pod's Dataplane keeps its name and changes only in health as the pod
// turns ready and back.
func TestReadyFlips(t *testing.T) {
	ns := meshNS("shop")
	svcs := []*corev1.Service{service("shop", "web", web, tcp(80, num(8080)), tcp(81, named("admin")))}
	var name string
	for i, status := range []corev1.ConditionStatus{corev1.ConditionFalse, corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionTrue} {
		dp, problems := kubernetes.DataplaneFor(kubernetes.Input{Zone: "zone-1", Namespace: ns, Pod: newPod("shop", "web-1", web, ready(status)), Services: svcs})
		if dp == nil || len(problems) > 0 {
			t.Fatalf("step %d: Dataplane %v, problems %v", i, dp, problems)
		}
		if err := resource.Validate(dp); err != nil {
			t.Fatal(err)
		}
		if i > 0 && dp.Meta.Name != name {
			t.Errorf("step %d: name %q, was %q", i, dp.Meta.Name, name)
		}
		name = dp.Meta.Name
		in := dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()
		if len(in) != 2 {
			t.Fatalf("step %d: %d inbounds, want 2", i, len(in))
		}
		for _, ib := range in {
			if got, want := ib.GetHealth().GetReady(), status == corev1.ConditionTrue; got != want {
				t.Errorf("step %d (Ready=%s): inbound %d ready = %v", i, status, ib.GetPort(), got)
			}
		}
	}
}

// Without a zone name the Dataplane has no zone label or tag (the zone
// composer always passes one; the global sets the label from the
// connection anyway).
func TestNoZone(t *testing.T) {
	dp, problems := kubernetes.DataplaneFor(kubernetes.Input{Namespace: meshNS("shop"), Pod: newPod("shop", "web-1", web),
		Services: []*corev1.Service{service("shop", "web", web, tcp(80, num(8080)))}})
	if dp == nil || len(problems) > 0 {
		t.Fatalf("Dataplane %v, problems %v", dp, problems)
	}
	if _, ok := dp.Meta.Labels[resource.ZoneLabel]; ok {
		t.Errorf("labels %v carry a zone", dp.Meta.Labels)
	}
	if _, ok := dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()[0].GetTags()[resource.ZoneLabel]; ok {
		t.Errorf("tags carry a zone")
	}
}
