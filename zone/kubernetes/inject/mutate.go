package inject

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// PatchOp is one operation of a JSON Patch (RFC 6902), the form an
// admission webhook returns its mutation in.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Denial is a pod the webhook refuses, with a message for its author: the
// annotation, its value and what is allowed.
type Denial struct {
	Message string
}

func (d *Denial) Error() string { return d.Message }

// Mutate returns the JSON Patch that injects pod, in namespace ns, with
// the init container atoll-init, the sidecar atoll-sidecar (a native
// sidecar first among the init containers, or with cfg.NativeSidecar off
// the last container), the volumes atoll-token (its projected token) and
// atoll-run (its scratch space), and the annotation atoll.io/injected:
// "true". It returns no patch for a pod outside the mesh
// (kubernetes.MembershipOf), opted out (atoll.io/sidecar-injection:
// disabled) or already injected (the annotation, or a container or init
// container named atoll-sidecar), so that admitting the pod again changes
// nothing. An invalid atoll annotation, or a pod whose names clash with
// the injected ones, gives a *Denial. cfg must have passed Validate.
func Mutate(cfg Config, ns *corev1.Namespace, pod *corev1.Pod) ([]PatchOp, error) {
	if pod == nil {
		return nil, nil
	}
	if _, ok := pod.Annotations[InjectedAnnotation]; ok || hasContainer(pod.Spec.Containers, SidecarContainerName) ||
		hasContainer(pod.Spec.InitContainers, SidecarContainerName) {
		return nil, nil
	}
	gw, gateway := pod.Annotations[kubernetes.GatewayAnnotation]
	if gateway && gw != kubernetes.Enabled {
		return nil, &Denial{Message: fmt.Sprintf(
			"annotation %s: %q is not allowed: use %q for an API gateway's pod, or remove the annotation",
			kubernetes.GatewayAnnotation, gw, kubernetes.Enabled)}
	}
	m, problem := kubernetes.MembershipOf(ns, pod)
	if problem != nil {
		return nil, &Denial{Message: problem.Message}
	}
	if !m.InMesh {
		return nil, nil
	}
	exclude, err := excludedPorts(pod.Annotations)
	if err != nil {
		return nil, err
	}
	tp := transparentProxy(gateway, exclude)
	if err := tp.Validate(); err != nil {
		return nil, &Denial{Message: fmt.Sprintf("annotation %s: %q cannot be installed: %v",
			ExcludeInboundPortsAnnotation, pod.Annotations[ExcludeInboundPortsAnnotation], err)}
	}
	if err := clashes(pod); err != nil {
		return nil, err
	}
	res, err := cfg.Resources.requirements()
	if err != nil {
		return nil, fmt.Errorf("injector config: %w", err)
	}
	caPEM, err := cfg.xdsCA()
	if err != nil {
		return nil, fmt.Errorf("injector config: %w", err)
	}

	var patch []PatchOp
	side := sidecar(cfg, m.Mesh, res, caPEM)
	if cfg.NativeSidecar {
		// First the rules, then the sidecar, then the pod's own init
		// containers: their traffic goes through the mesh too.
		patch = prependTo(patch, "/spec/initContainers", len(pod.Spec.InitContainers), initContainer(cfg, tp), side)
	} else {
		// The pod's init containers run before the rules exist, since no
		// proxy would take their redirected traffic.
		patch = appendTo(patch, "/spec/initContainers", len(pod.Spec.InitContainers), initContainer(cfg, tp))
		patch = appendTo(patch, "/spec/containers", len(pod.Spec.Containers), side)
	}
	patch = appendTo(patch, "/spec/volumes", len(pod.Spec.Volumes), tokenVolume())
	patch = append(patch, PatchOp{Op: "add", Path: "/spec/volumes/-", Value: runVolume()})
	if pod.Spec.ServiceAccountName == "" {
		// A projected token needs a ServiceAccount. Kubernetes' ServiceAccount
		// admission plugin, which runs before webhooks, sets "default"; where
		// it is off, the injection does the same.
		patch = append(patch, PatchOp{Op: "add", Path: "/spec/serviceAccountName", Value: "default"})
	}
	if pod.Annotations == nil {
		patch = append(patch, PatchOp{Op: "add", Path: "/metadata/annotations", Value: map[string]string{InjectedAnnotation: "true"}})
	} else {
		patch = append(patch, PatchOp{Op: "add", Path: "/metadata/annotations/" + escape(InjectedAnnotation), Value: "true"})
	}
	return patch, nil
}

// appendTo adds v at the end of the list at path, which has n elements
// (none: the list may be absent, so it is added whole).
func appendTo[T any](patch []PatchOp, path string, n int, v T) []PatchOp {
	if n == 0 {
		return append(patch, PatchOp{Op: "add", Path: path, Value: []T{v}})
	}
	return append(patch, PatchOp{Op: "add", Path: path + "/-", Value: v})
}

// prependTo puts vs, in order, at the start of the list at path, which
// has n elements (none: the list may be absent, so it is added whole).
func prependTo[T any](patch []PatchOp, path string, n int, vs ...T) []PatchOp {
	if n == 0 {
		return append(patch, PatchOp{Op: "add", Path: path, Value: vs})
	}
	for i, v := range vs {
		patch = append(patch, PatchOp{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: v})
	}
	return patch
}

// escape makes s one JSON Pointer token (RFC 6901).
func escape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func hasContainer(cs []corev1.Container, name string) bool {
	return slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name })
}

// clashes refuses a pod that already uses a name the injection adds.
func clashes(pod *corev1.Pod) error {
	if hasContainer(pod.Spec.InitContainers, InitContainerName) || hasContainer(pod.Spec.Containers, InitContainerName) {
		return &Denial{Message: fmt.Sprintf(
			"the pod has a container named %s, which the sidecar injection adds: rename it, or annotate the pod %s: %s",
			InitContainerName, kubernetes.SidecarInjection, kubernetes.Disabled)}
	}
	for _, name := range []string{TokenVolumeName, RunVolumeName} {
		if slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name }) {
			return &Denial{Message: fmt.Sprintf(
				"the pod has a volume named %s, which the sidecar injection adds: rename it, or annotate the pod %s: %s",
				name, kubernetes.SidecarInjection, kubernetes.Disabled)}
		}
	}
	return nil
}

// excludedPorts parses atoll.io/exclude-inbound-ports: port numbers from
// 1 to 65535, separated by commas (spaces allowed), each once.
func excludedPorts(annotations map[string]string) ([]int, error) {
	v, ok := annotations[ExcludeInboundPortsAnnotation]
	if !ok {
		return nil, nil
	}
	bad := func(why string) error {
		return &Denial{Message: fmt.Sprintf(
			"annotation %s: %q is not allowed: %s; use port numbers from 1 to 65535 separated by commas, such as \"8080,8443\"",
			ExcludeInboundPortsAnnotation, v, why)}
	}
	var ports []int
	for f := range strings.SplitSeq(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, bad("it has an empty entry")
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad(fmt.Sprintf("%q is not a port", f))
		}
		if slices.Contains(ports, n) {
			return nil, bad(fmt.Sprintf("port %d is listed twice", n))
		}
		ports = append(ports, n)
	}
	return ports, nil
}
