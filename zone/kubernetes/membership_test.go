package kubernetes_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

func TestMembershipOf(t *testing.T) {
	in := map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled}
	mesh := func(m string) map[string]string { return map[string]string{kubernetes.MeshAnnotation: m} }
	cases := []struct {
		name    string
		ns      *corev1.Namespace
		pod     *corev1.Pod
		want    kubernetes.Membership
		problem string // part of the message; "" means none
	}{
		{"namespace in the mesh", namespace("a", in, nil), newPod("a", "p", nil), kubernetes.Membership{InMesh: true, Mesh: "default"}, ""},
		{"namespace not in the mesh", namespace("a", nil, nil), newPod("a", "p", nil), kubernetes.Membership{}, ""},
		{"nil namespace", nil, newPod("a", "p", nil), kubernetes.Membership{}, ""},
		{"namespace label disabled", namespace("a", map[string]string{kubernetes.SidecarInjection: "disabled"}, nil), newPod("a", "p", nil), kubernetes.Membership{}, ""},
		{"namespace annotated, not labelled", namespace("a", nil, in), newPod("a", "p", nil), kubernetes.Membership{}, ""},
		{"pod opts in", namespace("a", nil, nil), newPod("a", "p", nil, annotated(kubernetes.SidecarInjection, "enabled")), kubernetes.Membership{InMesh: true, Mesh: "default"}, ""},
		{"pod opts in, nil namespace", nil, newPod("a", "p", nil, annotated(kubernetes.SidecarInjection, "enabled")), kubernetes.Membership{InMesh: true, Mesh: "default"}, ""},
		{"pod opts out", namespace("a", in, nil), newPod("a", "p", nil, annotated(kubernetes.SidecarInjection, "disabled")), kubernetes.Membership{}, ""},
		{"pod labelled, not annotated", namespace("a", nil, nil), newPod("a", "p", in), kubernetes.Membership{}, ""},
		{"bad pod value", namespace("a", in, nil), newPod("a", "p", nil, annotated(kubernetes.SidecarInjection, "Enabled")), kubernetes.Membership{}, `"Enabled" is not allowed`},
		{"mesh on the pod", namespace("a", in, mesh("ns-mesh")), newPod("a", "p", nil, annotated(kubernetes.MeshAnnotation, "pod-mesh")), kubernetes.Membership{InMesh: true, Mesh: "pod-mesh"}, ""},
		{"mesh on the namespace", namespace("a", in, mesh("ns-mesh")), newPod("a", "p", nil), kubernetes.Membership{InMesh: true, Mesh: "ns-mesh"}, ""},
		{"bad mesh out of the mesh is no problem", namespace("a", nil, nil), newPod("a", "p", nil, annotated(kubernetes.MeshAnnotation, "BAD")), kubernetes.Membership{}, ""},
		{"bad mesh", namespace("a", in, nil), newPod("a", "p", nil, annotated(kubernetes.MeshAnnotation, "BAD")), kubernetes.Membership{}, `pod annotation atoll.io/mesh: mesh name "BAD" is invalid`},
		{"long mesh", namespace("a", in, mesh(strings.Repeat("m", 64))), newPod("a", "p", nil), kubernetes.Membership{}, "is 64 characters long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, problem := kubernetes.MembershipOf(c.ns, c.pod)
			if got != c.want {
				t.Errorf("membership = %+v, want %+v", got, c.want)
			}
			switch {
			case c.problem == "" && problem != nil:
				t.Errorf("problem %v, want none", problem)
			case c.problem != "" && (problem == nil || !strings.Contains(problem.Message, c.problem) || problem.Reason != kubernetes.ReasonInvalidAnnotation):
				t.Errorf("problem %v, want %s with %q", problem, kubernetes.ReasonInvalidAnnotation, c.problem)
			}
		})
	}
}
