package inject

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/atoll-mesh/atoll/internal/transparentproxy"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// The injected pod's shape: names, ports and the proxy's user, shared with
// `atoll transparent-proxy` and `atoll sidecar`.
const (
	InitContainerName    = "atoll-init"
	SidecarContainerName = "atoll-sidecar"
	TokenVolumeName      = "atoll-token"
	// RunVolumeName is the sidecar's only writable place (an emptyDir in
	// memory, mounted at RunDir): the xDS relay's socket and Envoy's
	// bootstrap.
	RunVolumeName = "atoll-run"
	RunDir        = "/var/run/atoll"

	// InjectedAnnotation marks a pod the webhook injected; a pod carrying
	// it is left alone.
	InjectedAnnotation = "atoll.io/injected"
	// ExcludeInboundPortsAnnotation lists pod ports (comma-separated)
	// whose inbound traffic bypasses Envoy.
	ExcludeInboundPortsAnnotation = "atoll.io/exclude-inbound-ports"

	ProxyUID     = transparentproxy.DefaultProxyUID
	OutboundPort = transparentproxy.DefaultOutboundPort
	InboundPort  = transparentproxy.DefaultInboundPort
	DNSPort      = transparentproxy.DefaultDNSPort
	AdminPort    = transparentproxy.DefaultAdminPort

	// TokenAudience is the audience of the projected ServiceAccount token
	// the sidecar presents to the zone's xDS server, which checks it.
	TokenAudience   = kubernetes.ProxyAudience
	TokenExpiration = 3600
	TokenDir        = "/var/run/secrets/atoll.io"
	TokenFile       = TokenDir + "/token"
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
	EnvDNSAddress    = "ATOLL_DNS_ADDRESS"
	EnvXDSCA         = "ATOLL_XDS_CA"
	EnvRunDir        = "ATOLL_RUN_DIR"
)

// transparentProxy is what the init container installs. A gateway's
// inbound traffic is not redirected; a workload's is, but for Envoy's
// admin port and the ports the pod excludes.
func transparentProxy(gateway bool, excludeInbound []int) transparentproxy.Config {
	tp := transparentproxy.Default()
	if gateway {
		tp.RedirectInbound, tp.ExcludeInboundPorts = false, nil
		return tp
	}
	tp.ExcludeInboundPorts = []int{AdminPort}
	for _, p := range excludeInbound {
		if p != AdminPort {
			tp.ExcludeInboundPorts = append(tp.ExcludeInboundPorts, p)
		}
	}
	return tp
}

// initContainer runs `atoll transparent-proxy install` with tp.
func initContainer(cfg Config, tp transparentproxy.Config) corev1.Container {
	root, no := int64(0), false
	return corev1.Container{
		Name:    InitContainerName,
		Image:   cfg.InitImage,
		Command: []string{"atoll"},
		Args:    tp.InstallArgs(),
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

// sidecar runs Envoy as ProxyUID, configured by the zone's xDS server,
// with the xDS relay and the DNS proxy of `atoll sidecar` beside it. caPEM
// is the zone's xDS CA (none: plaintext). Nothing in it needs a privilege
// or a writable root filesystem.
func sidecar(cfg Config, mesh string, res corev1.ResourceRequirements, caPEM []byte) corev1.Container {
	uid := int64(ProxyUID)
	yes, no := true, false
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	c := corev1.Container{
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
			{Name: EnvDNSAddress, Value: cfg.DNSAddress},
			{Name: EnvRunDir, Value: RunDir},
		},
		Resources: res,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			RunAsNonRoot:             &yes,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
			{Name: RunVolumeName, MountPath: RunDir},
		},
	}
	if len(caPEM) > 0 {
		c.Env = append(c.Env, corev1.EnvVar{Name: EnvXDSCA, Value: string(caPEM)})
	}
	if cfg.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		// The pod's next init containers and its containers start once
		// Envoy is ready: it has its listeners and clusters from the zone.
		c.StartupProbe = &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: ProbeCommand}},
			PeriodSeconds:    1,
			TimeoutSeconds:   2,
			FailureThreshold: 600,
		}
	}
	return c
}

// ProbeCommand checks, inside the sidecar container, that Envoy is ready
// (its admin interface's /ready on loopback).
var ProbeCommand = []string{"atoll", "sidecar", "probe"}

// runVolume is the sidecar's scratch space, in memory.
func runVolume() corev1.Volume {
	limit := resource.MustParse("16Mi")
	return corev1.Volume{Name: RunVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: &limit}}}
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
