package kubernetes

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Annotations and labels the zone reads on Namespaces, Pods and Services.
const (
	// SidecarInjection on a Namespace (label) or a Pod (annotation) puts
	// pods in the mesh when it is "enabled". On a Pod, "disabled" takes
	// the pod out of a mesh namespace.
	SidecarInjection = "atoll.io/sidecar-injection"
	// MeshAnnotation on a Pod, else on its Namespace, names the pod's
	// mesh; without it the pod is in the default mesh.
	MeshAnnotation = "atoll.io/mesh"
	// GatewayAnnotation "enabled" on a Pod makes the pod a delegated
	// gateway's Dataplane.
	GatewayAnnotation = "atoll.io/gateway"

	// Enabled and Disabled are the values of SidecarInjection and
	// GatewayAnnotation.
	Enabled  = "enabled"
	Disabled = "disabled"
)

// Tags and labels the zone writes besides those of internal/resource.
const (
	// ServiceNameTag is the name of the Kubernetes Service behind an
	// inbound or a gateway.
	ServiceNameTag = "k8s.atoll.io/service-name"
)

// Reasons of Problems, in the form of a Kubernetes Event's reason.
const (
	// ReasonInvalidAnnotation: an atoll annotation has a value the zone
	// does not accept; the pod gets no Dataplane.
	ReasonInvalidAnnotation = "InvalidAnnotation"
	// ReasonGatewayNotInMesh: a pod annotated as a gateway is not in the
	// mesh, so it has no sidecar to configure.
	ReasonGatewayNotInMesh = "GatewayNotInMesh"
	// ReasonNoService: no Service selects a gateway pod, so there is no
	// service name to tag it with.
	ReasonNoService = "NoService"
	// ReasonUnresolvedPort: a Service's named targetPort matches no port
	// of the pod's containers; that Service port gets no inbound.
	ReasonUnresolvedPort = "UnresolvedTargetPort"
	// ReasonPortConflict: two Service ports lead to the same pod port;
	// only the first gets the inbound.
	ReasonPortConflict = "InboundPortConflict"
	// ReasonInvalidDataplane: what the pod and its Services describe is
	// not a valid Dataplane.
	ReasonInvalidDataplane = "InvalidDataplane"
)

// Problem is something about a pod the user should fix. The controller
// reports it as a Kubernetes Event on the Pod.
type Problem struct {
	Reason  string
	Message string
}

func (p Problem) String() string { return p.Reason + ": " + p.Message }

// Membership says whether a pod is in the mesh, and in which one.
type Membership struct {
	InMesh bool
	Mesh   string // set when InMesh
}

// NamespaceInMesh reports whether a namespace is labelled
// atoll.io/sidecar-injection: enabled, which puts its pods in the mesh and
// its Services under service-upstream.
func NamespaceInMesh(ns *corev1.Namespace) bool {
	return ns != nil && ns.Labels[SidecarInjection] == Enabled
}

// MembershipOf returns whether pod is in the mesh. The pod's own
// atoll.io/sidecar-injection annotation decides when it has one; otherwise
// the namespace's label does. The mesh is the pod's atoll.io/mesh
// annotation, else the namespace's, else "default". A bad value gives a
// Problem and no membership.
func MembershipOf(ns *corev1.Namespace, pod *corev1.Pod) (Membership, *Problem) {
	if pod == nil {
		return Membership{}, nil
	}
	in := NamespaceInMesh(ns)
	if v, ok := pod.Annotations[SidecarInjection]; ok {
		switch v {
		case Enabled:
			in = true
		case Disabled:
			in = false
		default:
			return Membership{}, &Problem{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf(
				"annotation %s: %q is not allowed: use %q or %q", SidecarInjection, v, Enabled, Disabled)}
		}
	}
	if !in {
		return Membership{}, nil
	}
	mesh, from := resource.DefaultMesh, ""
	if v, ok := pod.Annotations[MeshAnnotation]; ok {
		mesh, from = v, "pod"
	} else if v, ok := namespaceAnnotation(ns, MeshAnnotation); ok {
		mesh, from = v, "namespace"
	}
	if msg := resource.CheckName(mesh); msg != "" {
		return Membership{}, &Problem{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf(
			"%s annotation %s: mesh name %s", from, MeshAnnotation, msg)}
	}
	return Membership{InMesh: true, Mesh: mesh}, nil
}

func namespaceAnnotation(ns *corev1.Namespace, key string) (string, bool) {
	if ns == nil {
		return "", false
	}
	v, ok := ns.Annotations[key]
	return v, ok
}
