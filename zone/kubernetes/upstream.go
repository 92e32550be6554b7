package kubernetes

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
)

// Service annotations of service-upstream.
const (
	// IgnoreAnnotation "true" on a Service keeps the zone from touching it.
	IgnoreAnnotation = "atoll.io/ignore"
	// ServiceUpstream and NginxServiceUpstream make ingress controllers
	// (Kong, ingress-nginx and others reading the same annotations) send
	// to the Service's ClusterIP instead of picking pod endpoints, so the
	// gateway's sidecar routes the request through the mesh.
	ServiceUpstream      = "ingress.kubernetes.io/service-upstream"
	NginxServiceUpstream = "nginx.ingress.kubernetes.io/service-upstream"
)

// ServiceUpstreamPatch returns the JSON merge patch that adds the
// service-upstream annotations svc lacks, and whether one is needed. A
// Service gets them when inMesh (its namespace is in the mesh, see
// NamespaceInMesh), unless it is of type ExternalName, annotated
// atoll.io/ignore: "true", or being deleted. An annotation already present
// is left as it is, whatever its value: a user's "false" stands. When both
// are present there is nothing to do.
//
// The patch carries the Service's resourceVersion, so it fails with a
// conflict rather than overwrite a value a user set since svc was read;
// the caller retries from the fresh Service.
func ServiceUpstreamPatch(svc *corev1.Service, inMesh bool) ([]byte, bool) {
	if svc == nil || !inMesh || svc.Spec.Type == corev1.ServiceTypeExternalName ||
		svc.Annotations[IgnoreAnnotation] == "true" || svc.DeletionTimestamp != nil {
		return nil, false
	}
	add := map[string]string{}
	for _, k := range []string{ServiceUpstream, NginxServiceUpstream} {
		if _, ok := svc.Annotations[k]; !ok {
			add[k] = "true"
		}
	}
	if len(add) == 0 {
		return nil, false
	}
	meta := map[string]any{"annotations": add}
	if svc.ResourceVersion != "" {
		meta["resourceVersion"] = svc.ResourceVersion
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		// Maps of strings always marshal.
		panic(err)
	}
	return patch, true
}
