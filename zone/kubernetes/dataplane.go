package kubernetes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Input is what the Dataplane of one pod is derived from.
type Input struct {
	// Zone is the zone's name: the atoll.io/zone label and tag.
	Zone string
	// Namespace is the pod's Namespace; nil reads as one without labels.
	Namespace *corev1.Namespace
	Pod       *corev1.Pod
	// Services are the Services of the pod's namespace; those of other
	// namespaces, ExternalName ones and those whose selector does not
	// match the pod are ignored.
	Services []*corev1.Service
}

// DataplaneFor returns the Dataplane pod should have, or nil when it should
// have none (not in the mesh, no IP yet, terminating or finished, no
// Service port to serve). Problems name what the user should fix; a pod
// with problems may still get a Dataplane (for the ports that work). A
// returned Dataplane passes resource.Validate.
func DataplaneFor(in Input) (*resource.Resource, []Problem) {
	pod := in.Pod
	if pod == nil || pod.DeletionTimestamp != nil ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil, nil
	}
	gw, gateway := pod.Annotations[GatewayAnnotation]
	if gateway && gw != Enabled {
		return nil, []Problem{{Reason: ReasonInvalidAnnotation, Message: fmt.Sprintf(
			"annotation %s: %q is not allowed: use %q for an API gateway's pod, or remove the annotation", GatewayAnnotation, gw, Enabled)}}
	}
	m, problem := MembershipOf(in.Namespace, pod)
	if problem != nil {
		return nil, []Problem{*problem}
	}
	if !m.InMesh {
		if gateway {
			return nil, []Problem{{Reason: ReasonGatewayNotInMesh, Message: fmt.Sprintf(
				"the pod is annotated %s: %s but is not in the mesh, so it has no sidecar: label namespace %q or annotate the pod %s: %s",
				GatewayAnnotation, Enabled, pod.Namespace, SidecarInjection, Enabled)}}
		}
		return nil, nil
	}
	if pod.Status.PodIP == "" {
		return nil, nil
	}
	services := selecting(pod, in.Services)
	networking := &v1alpha1.Dataplane_Networking{Address: pod.Status.PodIP}
	var problems []Problem
	if gateway {
		tags, ok := gatewayTags(in.Zone, pod, services)
		if !ok {
			return nil, []Problem{{Reason: ReasonNoService, Message: fmt.Sprintf(
				"no Service in namespace %q selects this gateway pod on a TCP port: create one, its name becomes the gateway's %s tag",
				pod.Namespace, resource.ServiceTag)}}
		}
		networking.Gateway = &v1alpha1.Dataplane_Networking_Gateway{
			Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED, Tags: tags}
	} else {
		networking.Inbound, problems = inbounds(in.Zone, pod, services)
		if len(networking.Inbound) == 0 {
			return nil, problems
		}
	}
	labels := map[string]string{
		resource.OriginLabel:    resource.OriginZone,
		resource.NamespaceLabel: pod.Namespace,
	}
	if in.Zone != "" {
		labels[resource.ZoneLabel] = in.Zone
	}
	r := &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: m.Mesh,
			Name: DataplaneName(pod.Namespace, pod.Name), Labels: labels},
		Spec: &v1alpha1.Dataplane{Networking: networking},
	}
	if err := resource.Validate(r); err != nil {
		return nil, append(problems, Problem{Reason: ReasonInvalidDataplane, Message: err.Error()})
	}
	return r, problems
}

// selecting returns the Services of pod's namespace whose selector matches
// the pod: those with a ClusterIP first, then headless ones, each by name.
// A Service without a selector selects nothing (its endpoints are managed
// by hand), as in Kubernetes.
func selecting(pod *corev1.Pod, services []*corev1.Service) []*corev1.Service {
	var out []*corev1.Service
	for _, svc := range services {
		if svc == nil || svc.Namespace != pod.Namespace || svc.Spec.Type == corev1.ServiceTypeExternalName ||
			len(svc.Spec.Selector) == 0 {
			continue
		}
		match := true
		for k, v := range svc.Spec.Selector {
			if got, ok := pod.Labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if hi, hj := headless(out[i]), headless(out[j]); hi != hj {
			return hj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// headless reports whether svc has no ClusterIP: clients reach its pods
// directly, by the names of the pods' DNS records.
func headless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

func isTCP(p corev1.ServicePort) bool { return p.Protocol == "" || p.Protocol == corev1.ProtocolTCP }

// serviceName is the atoll.io/service of a Service port, the naming rule's
// Kubernetes form.
func serviceName(svc *corev1.Service, port int32) string {
	return svc.Name + "_" + svc.Namespace + "_svc_" + strconv.Itoa(int(port))
}

// gatewayTags tags a gateway after one Service selecting it: the first
// (ClusterIP before headless, then by name) that has a TCP port, with its
// lowest TCP port. A gateway has one atoll.io/service; the choice does not
// depend on the order in which Services or ports are listed.
func gatewayTags(zone string, pod *corev1.Pod, services []*corev1.Service) (map[string]string, bool) {
	for _, svc := range services {
		var lowest int32
		for _, p := range svc.Spec.Ports {
			if isTCP(p) && p.Port > 0 && (lowest == 0 || p.Port < lowest) {
				lowest = p.Port
			}
		}
		if lowest != 0 {
			return tags(zone, pod, svc, serviceName(svc, lowest), ""), true
		}
	}
	return nil, false
}

// inbounds returns one inbound per TCP port of each selecting Service, in
// the order of selecting and ports as listed, on the pod port the Service
// sends to. A port no container has gets none and a Problem; so does one an
// earlier Service port already took, silently for a headless Service.
func inbounds(zone string, pod *corev1.Pod, services []*corev1.Service) ([]*v1alpha1.Dataplane_Networking_Inbound, []Problem) {
	ready := podReady(pod)
	var out []*v1alpha1.Dataplane_Networking_Inbound
	var problems []Problem
	taken := map[int32]string{}
	for _, svc := range services {
		for _, sp := range svc.Spec.Ports {
			if !isTCP(sp) || sp.Port < 1 || sp.Port > 65535 {
				continue
			}
			service := serviceName(svc, sp.Port)
			target, ok := targetPort(pod, sp)
			if !ok {
				problems = append(problems, Problem{Reason: ReasonUnresolvedPort, Message: fmt.Sprintf(
					"Service %q port %d sends to targetPort %q, which no container of the pod declares: name a container port %q or use a number",
					svc.Name, sp.Port, sp.TargetPort.String(), sp.TargetPort.String())})
				continue
			}
			if other, dup := taken[target]; dup {
				if headless(svc) {
					// A StatefulSet's governing Service beside its
					// client Service: nothing the user should change.
					continue
				}
				problems = append(problems, Problem{Reason: ReasonPortConflict, Message: fmt.Sprintf(
					"Service %q port %d and %s both send to pod port %d: the pod serves it as %s only; point one of them at another port",
					svc.Name, sp.Port, other, target, other)})
				continue
			}
			taken[target] = service
			out = append(out, &v1alpha1.Dataplane_Networking_Inbound{
				Port:   uint32(target),
				Tags:   tags(zone, pod, svc, service, appProtocol(sp)),
				Health: &v1alpha1.Health{Ready: ready},
			})
		}
	}
	return out, problems
}

// targetPort resolves a Service port's targetPort on pod: a number as is
// (unset means the Service port), a name by the pod's containers' ports of
// the same protocol, sidecar (restartable init) containers included.
func targetPort(pod *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	switch {
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == 0:
		return sp.Port, true
	case sp.TargetPort.Type == intstr.Int:
		p := sp.TargetPort.IntVal
		return p, p >= 1 && p <= 65535
	}
	name := sp.TargetPort.StrVal
	containers := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(containers[:len(containers):len(containers)], c)
		}
	}
	for _, c := range containers {
		for _, cp := range c.Ports {
			proto := cp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			if name != "" && cp.Name == name && proto == corev1.ProtocolTCP && cp.ContainerPort >= 1 && cp.ContainerPort <= 65535 {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// podReady reports whether the pod's Ready condition is True.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// perPodLabels differ from pod to pod of one workload. As tags they would
// split the workload into one entry per pod in the ZoneIngress.
var perPodLabels = map[string]bool{
	"pod-template-hash":                        true,
	"controller-revision-hash":                 true,
	"statefulset.kubernetes.io/pod-name":       true,
	"apps.kubernetes.io/pod-index":             true,
	"batch.kubernetes.io/job-completion-index": true,
	"batch.kubernetes.io/controller-uid":       true,
	"controller-uid":                           true,
}

func appProtocol(sp corev1.ServicePort) string {
	if sp.AppProtocol == nil {
		return ""
	}
	return *sp.AppProtocol
}

// appProtocols maps a Service port's appProtocol to atoll.io/protocol.
var appProtocols = map[string]string{
	"tcp": "tcp", "http": "http", "http2": "http2", "grpc": "grpc",
	"kubernetes.io/h2c": "http2",
}

// tags are the pod's labels that are valid tags, not per-pod and not in
// atoll's own prefixes, then the service's and zone's tags.
func tags(zone string, pod *corev1.Pod, svc *corev1.Service, service, appProtocol string) map[string]string {
	t := make(map[string]string, len(pod.Labels)+5)
	for k, v := range pod.Labels {
		if perPodLabels[k] || reserved(k) || resource.CheckLabel(k, v) != "" {
			continue
		}
		t[k] = v
	}
	t[resource.ServiceTag] = service
	t[resource.NamespaceLabel] = svc.Namespace
	t[ServiceNameTag] = svc.Name
	if zone != "" {
		t[resource.ZoneLabel] = zone
	}
	if p, ok := appProtocols[appProtocol]; ok {
		t[resource.ProtocolTag] = p
	}
	return t
}

// reserved reports whether a label key is in atoll's prefixes (atoll.io/,
// *.atoll.io/), which only the zone sets.
func reserved(key string) bool {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return false
	}
	prefix := key[:i]
	return prefix == "atoll.io" || strings.HasSuffix(prefix, ".atoll.io")
}
