package sidecar

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/atoll-mesh/atoll/internal/logging"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/transparentproxy"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// Defaults of the sidecar contract.
const (
	DefaultMesh          = "default"
	DefaultTokenFile     = "/var/run/secrets/atoll.io/token"
	DefaultRunDir        = "/var/run/atoll"
	DefaultResolvConf    = "/etc/resolv.conf"
	DefaultEnvoyBinary   = "envoy"
	DefaultEnvoyLogLevel = "info"
	DefaultDrainDuration = 5 * time.Second
	DefaultDNSPort       = transparentproxy.DefaultDNSPort
	DefaultAdminPort     = xds.EnvoyAdminPort

	// maxDrain bounds the drain: Kubernetes kills the container 30 s
	// after SIGTERM by default, and a pod's grace period is rarely
	// raised past a few minutes.
	maxDrain = 10 * time.Minute
)

// EnvoyLogLevels are the levels Envoy's --log-level accepts.
var EnvoyLogLevels = []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}

// Config is everything `atoll sidecar` needs; Settings says which flag and
// environment variable sets each field.
type Config struct {
	PodName       string         `yaml:"podName"`
	PodNamespace  string         `yaml:"podNamespace"`
	Mesh          string         `yaml:"mesh"`
	Zone          string         `yaml:"zone"`
	XDSAddress    string         `yaml:"xdsAddress"`
	XDSCA         string         `yaml:"xdsCA"`
	TokenFile     string         `yaml:"tokenFile"`
	DNSAddress    string         `yaml:"dnsAddress"`
	DNSPort       int            `yaml:"dnsPort"`
	ResolvConf    string         `yaml:"resolvConf"`
	RunDir        string         `yaml:"runDir"`
	EnvoyBinary   string         `yaml:"envoyBinary"`
	EnvoyLogLevel string         `yaml:"envoyLogLevel"`
	DrainDuration time.Duration  `yaml:"drainDuration"`
	AdminPort     int            `yaml:"adminPort"`
	Log           logging.Config `yaml:"log"`
}

// Default is the contract's defaults; the pod, the zone's addresses and
// the CA come from the webhook's environment.
func Default() Config {
	return Config{
		Mesh:          DefaultMesh,
		TokenFile:     DefaultTokenFile,
		DNSPort:       DefaultDNSPort,
		ResolvConf:    DefaultResolvConf,
		RunDir:        DefaultRunDir,
		EnvoyBinary:   DefaultEnvoyBinary,
		EnvoyLogLevel: DefaultEnvoyLogLevel,
		DrainDuration: DefaultDrainDuration,
		AdminPort:     DefaultAdminPort,
		Log:           logging.Default(),
	}
}

// Setting ties a Config field (its yaml Key) to a flag and an environment
// variable; the flag wins when both are set.
type Setting struct {
	Flag, Env, Key, Usage string
}

// Settings of `atoll sidecar`, as the sidecar contract fixes them.
var Settings = []Setting{
	{"pod-name", "POD_NAME", "podName", "the pod's name (the webhook sets it from metadata.name)"},
	{"pod-namespace", "POD_NAMESPACE", "podNamespace", "the pod's namespace (the webhook sets it from metadata.namespace)"},
	{"mesh", "ATOLL_MESH", "mesh", "the pod's mesh"},
	{"zone", "ATOLL_ZONE", "zone", "the zone's name (informational, logged)"},
	{"xds-address", "ATOLL_XDS_ADDRESS", "xdsAddress", "host:port of the zone's xDS Service, a name or an IP"},
	{"xds-ca", "ATOLL_XDS_CA", "xdsCA", "PEM text of the zone's xDS CA; empty connects in plaintext"},
	{"token-file", "ATOLL_TOKEN_FILE", "tokenFile", "the pod's projected ServiceAccount token (audience atoll-xds), read again for every xDS stream"},
	{"dns-address", "ATOLL_DNS_ADDRESS", "dnsAddress", "host:port of the zone's DNS Service; a name is resolved at start through the pod's resolv.conf"},
	{"dns-port", "ATOLL_DNS_PORT", "dnsPort", "port of the DNS proxy on 127.0.0.1 (and [::1]); 0 picks a free one (tests)"},
	{"resolv-conf", "ATOLL_RESOLV_CONF", "resolvConf", "resolv.conf whose first nameserver answers names outside the mesh"},
	{"run-dir", "ATOLL_RUN_DIR", "runDir", "writable directory for Envoy's bootstrap (envoy.json) and the xDS relay's socket (xds.sock)"},
	{"envoy-binary", "ATOLL_ENVOY_BINARY", "envoyBinary", "Envoy's path, or a name looked up in PATH"},
	{"envoy-log-level", "ENVOY_LOG_LEVEL", "envoyLogLevel", "Envoy's log level: trace, debug, info, warning, error, critical or off"},
	{"drain-duration", "ATOLL_DRAIN_DURATION", "drainDuration", "on SIGTERM, how long Envoy keeps serving before it is stopped"},
	{"admin-port", "ATOLL_ADMIN_PORT", "adminPort", "port of Envoy's admin interface on 127.0.0.1"},
	{"log-level", "ATOLL_LOG_LEVEL", "log.level", "the sidecar's log level: debug, info, warn, error"},
	{"log-format", "ATOLL_LOG_FORMAT", "log.format", "the sidecar's log format: text or json"},
}

// Name is how an error names the setting with yaml key: "--pod-name
// (POD_NAME)".
func Name(key string) string {
	i := slices.IndexFunc(Settings, func(s Setting) bool { return s.Key == key })
	if i < 0 {
		return key
	}
	return fmt.Sprintf("--%s (%s)", Settings[i].Flag, Settings[i].Env)
}

// Validate reports every setting that is wrong, each with what to do.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s", Name(key), fmt.Sprintf(format, args...)))
	}
	if c.PodName == "" {
		bad("podName", "is empty: set it to the pod's name (the webhook sets it from the downward API)")
	}
	if c.PodNamespace == "" {
		bad("podNamespace", "is empty: set it to the pod's namespace (the webhook sets it from the downward API)")
	}
	if why := resource.CheckName(c.Mesh); why != "" {
		bad("mesh", "%s", why)
	}
	if err := hostPort(c.XDSAddress); err != nil {
		bad("xdsAddress", "%q is invalid: %v: use the host:port of the zone's xDS Service, e.g. atoll-zone.atoll-system.svc:5678", c.XDSAddress, err)
	}
	if c.XDSCA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.XDSCA)) {
		bad("xdsCA", "holds no PEM certificate: give the PEM text of the zone's xDS CA (-----BEGIN CERTIFICATE-----), or nothing for plaintext")
	}
	if c.TokenFile == "" {
		bad("tokenFile", "is empty: give the path of the pod's projected ServiceAccount token, e.g. %s", DefaultTokenFile)
	}
	if err := hostPort(c.DNSAddress); err != nil {
		bad("dnsAddress", "%q is invalid: %v: use the host:port of the zone's DNS Service, e.g. atoll-zone.atoll-system.svc:53", c.DNSAddress, err)
	}
	if c.DNSPort < 0 || c.DNSPort > 65535 {
		bad("dnsPort", "%d is not a port: use 1-65535 (default %d), or 0 for a free one", c.DNSPort, DefaultDNSPort)
	}
	if c.ResolvConf == "" {
		bad("resolvConf", "is empty: give the resolv.conf naming the cluster DNS, e.g. %s", DefaultResolvConf)
	}
	if c.RunDir == "" {
		bad("runDir", "is empty: give a writable directory, e.g. %s", DefaultRunDir)
	}
	if c.EnvoyBinary == "" {
		bad("envoyBinary", "is empty: give Envoy's path or a name in PATH, e.g. %s", DefaultEnvoyBinary)
	}
	if !slices.Contains(EnvoyLogLevels, c.EnvoyLogLevel) {
		bad("envoyLogLevel", "%q is not a level: use one of %v", c.EnvoyLogLevel, EnvoyLogLevels)
	}
	if c.DrainDuration < 0 || c.DrainDuration > maxDrain {
		bad("drainDuration", "%s is out of range: use 0 to %s, within the pod's terminationGracePeriodSeconds", c.DrainDuration, maxDrain)
	}
	if c.AdminPort < 1 || c.AdminPort > 65535 {
		bad("adminPort", "%d is not a port: use 1-65535 (default %d)", c.AdminPort, DefaultAdminPort)
	}
	if c.AdminPort == c.DNSPort {
		bad("adminPort", "%d is the DNS proxy's port too: give them different ports", c.AdminPort)
	}
	if err := c.Log.Validate("log"); err != nil {
		errs = append(errs, fmt.Errorf("--log-level/--log-format: %w", err))
	}
	return errors.Join(errs...)
}

// hostPort checks host:port with a host and a port in 1-65535.
func hostPort(s string) error {
	if s == "" {
		return errors.New("it is empty")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("the host is empty")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 1-65535", port)
	}
	return nil
}
