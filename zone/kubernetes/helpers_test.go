package kubernetes_test

import (
	"maps"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

func namespace(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

func meshNS(name string) *corev1.Namespace {
	return namespace(name, map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled}, nil)
}

// podOpt changes a pod built by newPod.
type podOpt func(*corev1.Pod)

// newPod is a running, ready pod with an IP and one container with ports
// http (8080) and admin (9901).
func newPod(ns, name string, labels map[string]string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
			{Name: "admin", ContainerPort: 9901},
			{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func annotated(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func ready(status corev1.ConditionStatus) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: status},
		}
	}
}

func gateway(p *corev1.Pod) { annotated(kubernetes.GatewayAnnotation, kubernetes.Enabled)(p) }

type port struct {
	port   int32
	target intstr.IntOrString
	proto  corev1.Protocol
	app    string
}

func tcp(p int32, target intstr.IntOrString) port { return port{port: p, target: target} }

func service(ns, name string, selector map[string]string, ports ...port) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector},
	}
	for _, p := range ports {
		sp := corev1.ServicePort{Port: p.port, TargetPort: p.target, Protocol: p.proto}
		if sp.Protocol == "" {
			sp.Protocol = corev1.ProtocolTCP
		}
		if p.app != "" {
			sp.AppProtocol = &p.app
		}
		s.Spec.Ports = append(s.Spec.Ports, sp)
	}
	return s
}

func headlessService(s *corev1.Service) *corev1.Service {
	s.Spec.ClusterIP = corev1.ClusterIPNone
	return s
}

// tagsOf is what a Dataplane of pod labels app=<app> in ns, tagged after
// Service svc, carries, plus extra.
func tagsOf(ns, svc, service string, extra map[string]string) map[string]string {
	t := map[string]string{
		resource.ServiceTag:       service,
		resource.NamespaceLabel:   ns,
		kubernetes.ServiceNameTag: svc,
		resource.ZoneLabel:        "zone-1",
	}
	maps.Copy(t, extra)
	return t
}

func inbound(port uint32, ready bool, tags map[string]string) *v1alpha1.Dataplane_Networking_Inbound {
	return &v1alpha1.Dataplane_Networking_Inbound{Port: port, Tags: tags, Health: &v1alpha1.Health{Ready: ready}}
}

// wantDataplane is the Dataplane expected for pod name in ns.
func wantDataplane(mesh, ns, pod, ip string, n *v1alpha1.Dataplane_Networking) *resource.Resource {
	n.Address = ip
	return &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: mesh, Name: kubernetes.DataplaneName(ns, pod),
			Labels: map[string]string{resource.OriginLabel: resource.OriginZone, resource.ZoneLabel: "zone-1", resource.NamespaceLabel: ns}},
		Spec: &v1alpha1.Dataplane{Networking: n},
	}
}

// checkDataplane fails unless got is want (both may be nil) and valid.
func checkDataplane(t *testing.T, got, want *resource.Resource) {
	t.Helper()
	if got != nil {
		if err := resource.Validate(got); err != nil {
			t.Errorf("the Dataplane does not validate: %v", err)
		}
	}
	switch {
	case want == nil && got == nil:
		return
	case want == nil:
		t.Fatalf("got Dataplane %s %v, want none", got.Meta.Name, got.Spec)
	case got == nil:
		t.Fatalf("got no Dataplane, want %s %v", want.Meta.Name, want.Spec)
	}
	if got.Meta.Type != want.Meta.Type || got.Meta.Mesh != want.Meta.Mesh || got.Meta.Name != want.Meta.Name {
		t.Errorf("got %s, want %s", got.Key(), want.Key())
	}
	if !maps.Equal(got.Meta.Labels, want.Meta.Labels) {
		t.Errorf("labels = %v, want %v", got.Meta.Labels, want.Meta.Labels)
	}
	if !proto.Equal(got.Spec, want.Spec) {
		t.Errorf("spec =\n  %v\nwant\n  %v", got.Spec, want.Spec)
	}
}

// checkProblems fails unless problems have exactly the reasons want, in
// order, each message containing the matching text of wantText.
func checkProblems(t *testing.T, problems []kubernetes.Problem, want []string, wantText []string) {
	t.Helper()
	var reasons []string
	for _, p := range problems {
		reasons = append(reasons, p.Reason)
	}
	if strings.Join(reasons, ",") != strings.Join(want, ",") {
		t.Fatalf("problems = %v, want reasons %v", problems, want)
	}
	for i, text := range wantText {
		if !strings.Contains(problems[i].Message, text) {
			t.Errorf("problem %d = %q, want it to mention %q", i, problems[i].Message, text)
		}
	}
}
