package inject

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The injected pod's shape: names, ports and the proxy's user, shared with
// `atoll transparent-proxy` and `atoll sidecar`.
const (
	InitContainerName    = "atoll-init"
	SidecarContainerName = "atoll-sidecar"
	TokenVolumeName      = "atoll-token"

	// InjectedAnnotation marks a pod the webhook injected; a pod carrying
	// it is left alone.
	InjectedAnnotation = "atoll.io/injected"
	// ExcludeInboundPortsAnnotation lists pod ports (comma-separated)
	// whose inbound traffic bypasses Envoy.
	ExcludeInboundPortsAnnotation = "atoll.io/exclude-inbound-ports"

	ProxyUID     = 5678
	OutboundPort = 15001
	InboundPort  = 15006
	DNSPort      = 15053
	AdminPort    = 9901

	// TokenAudience is the audience of the projected ServiceAccount token
	// the sidecar presents to the zone's xDS server.
	TokenAudience   = "atoll-xds"
	TokenExpiration = 3600
	TokenDir        = "/var/run/secrets/atoll.io"
	TokenFile       = TokenDir + "/token"
)

// Flags of `atoll transparent-proxy install` (package
// internal/transparentproxy owns them; these are the same strings).
const (
	flagProxyUID            = "--proxy-uid"
	flagOutboundPort        = "--outbound-port"
	flagInboundPort         = "--inbound-port"
	flagDNSPort             = "--dns-port"
	flagRedirectInbound     = "--redirect-inbound"
	flagExcludeInboundPorts = "--exclude-inbound-ports"
)

// Environment of the sidecar container.
const (
	EnvPodName       = "POD_NAME"
	EnvPodNamespace  = "POD_NAMESPACE"
	EnvMesh          = "ATOLL_MESH"
	EnvZone          = "ATOLL_ZONE"
	EnvXDSAddress    = "ATOLL_XDS_ADDRESS"
	EnvTokenFile     = "ATOLL_TOKEN_FILE"
	EnvEnvoyLogLevel = "ENVOY_LOG_LEVEL"
)

// initContainer installs the transparent-proxy rules. A gateway's inbound
// traffic is not redirected; a workload's is, but for Envoy's admin port
// and the ports the pod excludes.
func initContainer(cfg Config, gateway bool, excludeInbound []int) corev1.Container {
	itoa := strconv.Itoa
	args := []string{
		flagProxyUID, itoa(ProxyUID),
		flagOutboundPort, itoa(OutboundPort),
		flagInboundPort, itoa(InboundPort),
		flagDNSPort, itoa(DNSPort),
	}
	if gateway {
		args = append(args, flagRedirectInbound+"=false")
	} else {
		ports := []string{itoa(AdminPort)}
		for _, p := range excludeInbound {
			if p != AdminPort {
				ports = append(ports, itoa(p))
			}
		}
		args = append(args, flagExcludeInboundPorts, strings.Join(ports, ","))
	}
	root, no := int64(0), false
	return corev1.Container{
		Name:    InitContainerName,
		Image:   cfg.InitImage,
		Command: []string{"atoll", "transparent-proxy", "install"},
		Args:    args,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:    &root,
			RunAsNonRoot: &no,
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}

// sidecar runs Envoy as ProxyUID, configured by the zone's xDS server.
func sidecar(cfg Config, mesh string, res corev1.ResourceRequirements) corev1.Container {
	uid := int64(ProxyUID)
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	return corev1.Container{
		Name:    SidecarContainerName,
		Image:   cfg.SidecarImage,
		Command: []string{"atoll", "sidecar"},
		Env: []corev1.EnvVar{
			{Name: EnvPodName, ValueFrom: field("metadata.name")},
			{Name: EnvPodNamespace, ValueFrom: field("metadata.namespace")},
			{Name: EnvMesh, Value: mesh},
			{Name: EnvZone, Value: cfg.Zone},
			{Name: EnvXDSAddress, Value: cfg.XDSAddress},
			{Name: EnvTokenFile, Value: TokenFile},
			{Name: EnvEnvoyLogLevel, Value: cfg.EnvoyLogLevel},
		},
		Resources: res,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:  &uid,
			RunAsGroup: &uid,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true}},
	}
}

// tokenVolume projects the pod's ServiceAccount token for the zone's xDS
// server.
func tokenVolume() corev1.Volume {
	exp := int64(TokenExpiration)
	return corev1.Volume{
		Name: TokenVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          TokenAudience,
				ExpirationSeconds: &exp,
				Path:              "token",
			}}},
		}},
	}
}
