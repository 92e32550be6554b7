package inject

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	atollresource "github.com/atoll-mesh/atoll/internal/resource"
)

// Config is what the zone puts into every pod it injects.
type Config struct {
	// SidecarImage runs Envoy (`atoll sidecar`) in the container
	// atoll-sidecar.
	SidecarImage string
	// InitImage runs `atoll transparent-proxy install` (it needs
	// iptables) in the init container atoll-init.
	InitImage string
	// EnvoyLogLevel is Envoy's --log-level: trace, debug, info, warning,
	// error, critical or off.
	EnvoyLogLevel string
	// Resources are the sidecar's requests and limits, as Kubernetes
	// quantities ("100m", "128Mi"); an empty one is not set.
	Resources Resources
	// XDSAddress is the host:port of the zone's xDS Service, which the
	// sidecar's Envoy connects to.
	XDSAddress string
	// Zone is the zone's name, given to the sidecar as ATOLL_ZONE.
	Zone string
	// DNSAddress is the host:port of the zone's DNS Service, which the
	// sidecar's DNS proxy sends `.mesh` queries to.
	DNSAddress string
	// NativeSidecar runs the sidecar as a Kubernetes native sidecar (an
	// init container with restartPolicy Always, Kubernetes 1.29 and
	// later): it starts, and is ready, before the pod's other init
	// containers and its containers, and stops after them, so the
	// application never runs without its proxy. Off: an ordinary
	// container next to the application's, for older clusters.
	NativeSidecar bool
	// XDSCAFile, when set, is the CA (PEM) the sidecar verifies the zone's
	// xDS server with (an absolute path); it is read at every admission, so
	// a rotated CA reaches new pods, and a pod admitted while it cannot be
	// read is refused. Empty: the sidecar connects in plaintext.
	XDSCAFile string
}

// Resources are the sidecar container's requests and limits.
type Resources struct {
	CPURequest, MemoryRequest, CPULimit, MemoryLimit string
}

// Default is a Config with placeholder images: a zone sets its images,
// xDS address and zone name.
func Default() Config {
	return Config{
		SidecarImage:  "atoll-sidecar:latest",
		InitImage:     "atoll-init:latest",
		EnvoyLogLevel: "info",
		NativeSidecar: true,
		Resources: Resources{
			CPURequest:    "50m",
			MemoryRequest: "64Mi",
			CPULimit:      "1",
			MemoryLimit:   "512Mi",
		},
	}
}

// EnvoyLogLevels are the values EnvoyLogLevel accepts.
var EnvoyLogLevels = []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}

// Validate checks every field and names each one that is wrong.
func (c Config) Validate() error {
	var errs []error
	if c.SidecarImage == "" {
		errs = append(errs, errors.New("sidecar image is required: set the image that runs `atoll sidecar`"))
	}
	if c.InitImage == "" {
		errs = append(errs, errors.New("init image is required: set the image that runs `atoll transparent-proxy install`"))
	}
	if !slices.Contains(EnvoyLogLevels, c.EnvoyLogLevel) {
		errs = append(errs, fmt.Errorf("envoy log level %q is not a level: use one of %v", c.EnvoyLogLevel, EnvoyLogLevels))
	}
	if _, err := c.Resources.requirements(); err != nil {
		errs = append(errs, err)
	}
	if err := checkHostPort(c.XDSAddress); err != nil {
		errs = append(errs, fmt.Errorf("xds address: %w", err))
	}
	if err := checkHostPort(c.DNSAddress); err != nil {
		errs = append(errs, fmt.Errorf("dns address: %w", err))
	}
	if c.XDSCAFile != "" && !filepath.IsAbs(c.XDSCAFile) {
		errs = append(errs, fmt.Errorf("xds CA file %q is not an absolute path: give the CA file's full path", c.XDSCAFile))
	}
	if msg := atollresource.CheckName(c.Zone); msg != "" {
		errs = append(errs, fmt.Errorf("zone name %s", msg))
	}
	return errors.Join(errs...)
}

// xdsCA reads XDSCAFile (none: nil), at each admission: Validate does not,
// since the zone's own CA is made when its xDS server starts.
func (c Config) xdsCA() ([]byte, error) {
	if c.XDSCAFile == "" {
		return nil, nil
	}
	return ReadCA(c.XDSCAFile)
}

// ReadCA reads a CA file: one or more PEM certificates.
func ReadCA(path string) ([]byte, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xds CA file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("xds CA file %s holds no PEM certificate: give the CA of the zone's xDS certificate", path)
	}
	return pem, nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (such as atoll-zone.atoll-system.svc:5678): %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host: use the zone's Service name, such as atoll-zone.atoll-system.svc:5678", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}

// requirements parses the quantities; each limit must be at least its
// request.
func (r Resources) requirements() (corev1.ResourceRequirements, error) {
	var out corev1.ResourceRequirements
	var errs []error
	set := func(list *corev1.ResourceList, name corev1.ResourceName, what, v string) {
		if v == "" {
			return
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() < 0 {
			errs = append(errs, fmt.Errorf("sidecar %s %q is not a quantity: use a value such as 100m (CPU) or 128Mi (memory)", what, v))
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
	}
	set(&out.Requests, corev1.ResourceCPU, "CPU request", r.CPURequest)
	set(&out.Requests, corev1.ResourceMemory, "memory request", r.MemoryRequest)
	set(&out.Limits, corev1.ResourceCPU, "CPU limit", r.CPULimit)
	set(&out.Limits, corev1.ResourceMemory, "memory limit", r.MemoryLimit)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := out.Requests[name]
		lim, okl := out.Limits[name]
		if okr && okl && lim.Cmp(req) < 0 {
			errs = append(errs, fmt.Errorf("sidecar %s limit %s is below its request %s: raise the limit or lower the request", name, lim.String(), req.String()))
		}
	}
	return out, errors.Join(errs...)
}
