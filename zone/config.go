package zone

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/atoll-mesh/atoll/dns"
	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/logging"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// Modes a zone can run in.
const (
	ModeUniversal  = "universal"
	ModeKubernetes = "kubernetes"
)

// Config is a zone control plane's configuration.
type Config struct {
	// Zone is this zone's name, unique across the mesh.
	Zone string `yaml:"zone" json:"zone"`
	// Mode is universal (Dataplanes registered through the API) or
	// kubernetes (discovered from Pods).
	Mode string `yaml:"mode" json:"mode"`
	// APIAddr is the REST API listener (also /healthz, /readyz, /metrics).
	APIAddr string `yaml:"apiAddr" json:"apiAddr"`
	// APITokenFile holds the API token callers from other machines must
	// send; empty keeps a generated one in dataDir/api-token.
	APITokenFile string `yaml:"apiTokenFile" json:"apiTokenFile"`
	// APIAuthLoopback asks for the token from loopback callers too.
	APIAuthLoopback bool `yaml:"apiAuthLoopback" json:"apiAuthLoopback"`
	// APITLSCert and APITLSKey serve the API over TLS from these PEM files,
	// followed on disk (a renewed pair is used from the next connection).
	APITLSCert string `yaml:"apiTLSCert" json:"apiTLSCert"`
	APITLSKey  string `yaml:"apiTLSKey" json:"apiTLSKey"`
	// APITLS serves the API over TLS with a generated certificate: a CA
	// kept in dataDir/api-tls, served at /api-ca.pem.
	APITLS bool `yaml:"apiTLS" json:"apiTLS"`
	// APITLSSANs are further DNS names and IP addresses the generated
	// certificate covers (besides loopback and this machine's host name and
	// addresses): the names callers reach the API by.
	APITLSSANs []string `yaml:"apiTLSSANs" json:"apiTLSSANs"`
	// APIInsecure accepts a plaintext API on an address beyond loopback.
	APIInsecure bool `yaml:"apiInsecure" json:"apiInsecure"`
	// DataDir holds the zone's local state.
	DataDir string `yaml:"dataDir" json:"dataDir"`
	// GlobalAddress is the global's KDS address, grpcs://HOST:PORT. Empty
	// runs the zone on its own.
	GlobalAddress string `yaml:"globalAddress" json:"globalAddress"`
	// GlobalCAFile verifies the global's KDS certificate (the global serves
	// its generated CA at /kds-ca.pem); empty uses the system's roots.
	GlobalCAFile string `yaml:"globalCAFile" json:"globalCAFile"`
	// GlobalTokenFile holds the zone token the global issued for this zone
	// (atollctl generate zone-token). It is read again on every connection,
	// so a token replaced on disk is used from the next one on.
	GlobalTokenFile string `yaml:"globalTokenFile" json:"globalTokenFile"`
	// KDSInsecure allows a plaintext grpc:// global address.
	KDSInsecure bool `yaml:"kdsInsecure" json:"kdsInsecure"`
	// Ingress is where other zones reach this zone's services.
	Ingress Ingress `yaml:"ingress" json:"ingress"`
	DNS     DNS     `yaml:"dns" json:"dns"`
	XDS     XDS     `yaml:"xds" json:"xds"`
	// VIPCIDR is the range of service VIPs, the global's vip.cidr; the zone
	// uses it for its own proposals while the global is unreachable.
	VIPCIDR string `yaml:"vipCIDR" json:"vipCIDR"`
	// VIPCIDR6 is the global's vip.cidr6 (empty: IPv4 VIPs only).
	VIPCIDR6 string `yaml:"vipCIDR6" json:"vipCIDR6"`
	// Kubernetes configures --mode kubernetes; other modes ignore it.
	Kubernetes Kubernetes     `yaml:"kubernetes" json:"kubernetes"`
	Log        logging.Config `yaml:"log" json:"log"`
}

// Kubernetes configures a zone in Kubernetes mode: where the API server
// is, where the zone keeps its own state, and how fast it may talk.
type Kubernetes struct {
	// Kubeconfig is a kubeconfig file; empty uses the in-cluster config
	// (the pod's ServiceAccount).
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig"`
	// Context is the kubeconfig context to use; empty uses its current one.
	Context string `yaml:"context" json:"context"`
	// Namespace is the zone's system namespace: the home of its
	// ZoneIngress, of what the global sends and of its leader Lease.
	// Empty uses the namespace of the pod the zone runs in.
	Namespace string `yaml:"namespace" json:"namespace"`
	// QPS and Burst bound the zone's requests to the API server (watches
	// are not counted). client-go's defaults (5 and 10) would take
	// minutes to write the Dataplanes of a few thousand pods; the defaults
	// (kubernetes.DefaultQPS, DefaultBurst) leave a cold start of 2,000
	// pods to the API server's pace.
	QPS   int `yaml:"qps" json:"qps"`
	Burst int `yaml:"burst" json:"burst"`
	// LeaderElection decides which of the zone's replicas writes.
	LeaderElection LeaderElection `yaml:"leaderElection" json:"leaderElection"`
	// Injector is the sidecar injector's webhook (injector.go).
	Injector Injector `yaml:"injector" json:"injector"`
}

// LeaderElection configures the Lease the replicas of a Kubernetes zone
// compete for: only its holder writes (Dataplanes, Service patches, the
// ZoneIngress) and talks to the global; every replica serves DNS, xDS and
// the read API. A holder that stops cleanly releases the Lease at once; one
// that dies is replaced within LeaseDuration.
type LeaderElection struct {
	// LeaseName names the Lease in the zone's system namespace; empty
	// uses atoll-zone-<zone>.
	LeaseName string `yaml:"leaseName" json:"leaseName"`
	// LeaseDuration is how long followers wait, after the holder's last
	// renewal, before taking over.
	LeaseDuration time.Duration `yaml:"leaseDuration" json:"leaseDuration"`
	// RenewDeadline is how long the holder keeps trying to renew before it
	// stops writing; shorter than LeaseDuration, so it stops before anyone
	// may take over.
	RenewDeadline time.Duration `yaml:"renewDeadline" json:"renewDeadline"`
	// RetryPeriod is the wait between attempts to acquire or renew.
	RetryPeriod time.Duration `yaml:"retryPeriod" json:"retryPeriod"`
}

// Lease is the name of the zone's Lease.
func (l LeaderElection) Lease(zone string) string {
	if l.LeaseName != "" {
		return l.LeaseName
	}
	return "atoll-zone-" + zone
}

// XDS configures the zone's xDS server, which Envoy sidecars and proxyless
// gRPC clients connect to.
type XDS struct {
	// Addr is the gRPC listener; empty disables the server.
	Addr string `yaml:"addr" json:"addr"`
	// RequireTokens refuses Dataplanes' proxies that do not present the
	// token of the bootstrap the zone serves (the ingress always must).
	// In Kubernetes mode it governs only Dataplanes registered through the
	// API: the proxies of pods' Dataplanes must always present their pod's
	// ServiceAccount token instead (zone/kubernetes ProxyAuthenticator).
	RequireTokens bool `yaml:"requireTokens" json:"requireTokens"`
	// TLS serves xDS over TLS, with a CA and certificate the zone keeps in
	// dataDir/xds-tls (the CA at GET /xds-ca.pem, and in the bootstraps),
	// or with the certificate in TLSCert.
	TLS bool `yaml:"tls" json:"tls"`
	// TLSSANs are further DNS names and IP addresses the generated
	// certificate covers, besides loopback and this machine's host name and
	// addresses.
	TLSSANs []string `yaml:"tlsSANs" json:"tlsSANs"`
	// TLSCert and TLSKey (PEM files) are the certificate xDS is served
	// with instead of a generated one, and TLSCA the CA that signed it,
	// served at /xds-ca.pem, written into the bootstraps and given to
	// injected sidecars: one certificate every replica of the zone serves
	// (a Secret's tls.crt, tls.key and ca.crt). All three are followed on
	// disk: renewed files are used from the next connection or request.
	TLSCert string `yaml:"tlsCert" json:"tlsCert"`
	TLSKey  string `yaml:"tlsKey" json:"tlsKey"`
	TLSCA   string `yaml:"tlsCA" json:"tlsCA"`
	// Debounce gathers changes for at most this long before proxies get
	// them; the first change after a quiet interval goes out at once.
	Debounce time.Duration `yaml:"debounce" json:"debounce"`
}

// DNS configures the zone's DNS server.
type DNS struct {
	// Addr is the UDP and TCP listener; empty disables the server.
	Addr   string        `yaml:"addr" json:"addr"`
	Domain string        `yaml:"domain" json:"domain"`
	TTL    time.Duration `yaml:"ttl" json:"ttl"`
	// Upstream receives queries outside Domain; empty refuses them.
	Upstream string `yaml:"upstream" json:"upstream"`
	// UpstreamAllow are the client networks (CIDRs) whose queries outside
	// Domain are forwarded; others are answered REFUSED, so the server is
	// no open resolver. Empty forwards for nobody.
	UpstreamAllow []string `yaml:"upstreamAllow" json:"upstreamAllow"`
	// MaxInFlight bounds the queries forwarded at once; more are answered
	// SERVFAIL.
	MaxInFlight int `yaml:"maxInFlight" json:"maxInFlight"`
	// MaxTCPConns bounds the TCP connections served at once; more wait.
	MaxTCPConns int `yaml:"maxTCPConns" json:"maxTCPConns"`
}

// upstreamAllow is UpstreamAllow parsed; Validate has checked it.
func (d DNS) upstreamAllow() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(d.UpstreamAllow))
	for _, c := range d.UpstreamAllow {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Ingress is the address of the zone's ingress, as published in its
// ZoneIngress.
type Ingress struct {
	Address           string `yaml:"address" json:"address"`
	Port              int    `yaml:"port" json:"port"`
	AdvertisedAddress string `yaml:"advertisedAddress" json:"advertisedAddress"`
	AdvertisedPort    int    `yaml:"advertisedPort" json:"advertisedPort"`
}

// DefaultYAML is Default() as YAML, shipped as a reference.
//
//go:embed defaults.yaml
var DefaultYAML []byte

// Default returns the built-in defaults. Zone has no default: every zone
// must be named.
func Default() Config {
	return Config{
		Mode:    ModeUniversal,
		APIAddr: "127.0.0.1:5691",
		DataDir: "/var/lib/atoll/zone",
		Ingress: Ingress{Address: "127.0.0.1", Port: 10001},
		DNS: DNS{Addr: ":5653", Domain: "mesh", TTL: 5 * time.Second,
			UpstreamAllow: slices.Clone(dns.DefaultUpstreamAllow), MaxInFlight: dns.DefaultMaxInFlight, MaxTCPConns: dns.DefaultMaxTCPConns},
		XDS:     XDS{Addr: ":5678", TLSSANs: []string{}, Debounce: 20 * time.Millisecond},
		VIPCIDR: "240.0.0.0/4",
		Kubernetes: Kubernetes{QPS: 1000, Burst: 2000, LeaderElection: LeaderElection{
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
			Injector: defaultInjector()},
		Log: logging.Default(),

		APITLSSANs: []string{},
	}
}

// Validate returns every bad setting, each named as in the config file.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if msg := resource.CheckZoneName(c.Zone); msg != "" {
		add(fmt.Errorf("zone: %s (name this zone with --zone, e.g. --zone zone-1)", msg))
	}
	add(checkMode(c.Mode))
	add(config.CheckListenAddr("apiAddr", c.APIAddr))
	add(c.apiTLS().Check(c.APIAddr, c.APIInsecure))
	if c.DataDir == "" {
		add(errors.New("dataDir: is required: name a directory for the zone's state"))
	}
	if c.GlobalAddress != "" {
		add(checkGlobalAddresses(c.GlobalAddress, c.KDSInsecure))
	}
	if c.GlobalTokenFile != "" && c.GlobalAddress == "" {
		add(errors.New("globalTokenFile: a zone token, but no globalAddress to present it to: give --global-address too, or drop it"))
	}
	if c.KDSInsecure && strings.HasPrefix(strings.TrimSpace(c.GlobalAddress), "grpcs://") {
		add(errors.New("kdsInsecure: the global address is grpcs:// (TLS): drop --kds-insecure or use grpc://"))
	}
	if c.Ingress.Address == "" {
		add(errors.New("ingress.address: is required: the address other zones reach this zone's ingress at"))
	}
	for field, p := range map[string]int{"ingress.port": c.Ingress.Port, "ingress.advertisedPort": c.Ingress.AdvertisedPort} {
		if p < 0 || p > 65535 || (p == 0 && field == "ingress.port") {
			add(fmt.Errorf("%s: %d is out of range: use 1-65535", field, p))
		}
	}
	if c.XDS.Debounce < time.Millisecond || c.XDS.Debounce > 50*time.Millisecond {
		add(fmt.Errorf("xds.debounce: %s is out of range: use 1ms to 50ms (e.g. 20ms)", c.XDS.Debounce))
	}
	if len(c.XDS.TLSSANs) > 0 && !c.XDS.TLS {
		add(errors.New("xds.tlsSANs: names for the xDS certificate, but xds.tls is off: turn it on, or drop them"))
	}
	add(c.XDS.checkFiles(time.Now()))
	for i, san := range c.XDS.TLSSANs {
		if net.ParseIP(san) == nil && !config.IsDNSName(san) {
			add(fmt.Errorf("xds.tlsSANs[%d]: %q is neither an IP address nor a DNS name (e.g. zone-1.example.com, 10.0.0.5; no port, no scheme)", i, san))
		}
	}
	if c.XDS.Addr != "" {
		add(config.CheckListenAddr("xds.addr", c.XDS.Addr))
	}
	if c.DNS.Addr != "" {
		add(config.CheckListenAddr("dns.addr", c.DNS.Addr))
	}
	if c.DNS.Domain == "" || strings.ContainsAny(c.DNS.Domain, " /") {
		add(fmt.Errorf("dns.domain: %q is not a domain (default mesh)", c.DNS.Domain))
	}
	if c.DNS.TTL < time.Second || c.DNS.TTL > time.Hour {
		add(fmt.Errorf("dns.ttl: %s is out of range: use 1s to 1h (default 5s)", c.DNS.TTL))
	}
	if c.DNS.Upstream != "" {
		if _, _, err := net.SplitHostPort(c.DNS.Upstream); err != nil {
			add(fmt.Errorf("dns.upstream: %q is not host:port (e.g. 10.96.0.10:53)", c.DNS.Upstream))
		}
	}
	for i, cidr := range c.DNS.UpstreamAllow {
		if p, err := netip.ParsePrefix(cidr); err != nil {
			add(fmt.Errorf("dns.upstreamAllow[%d]: %q is not a network such as 10.0.0.0/8 or fd00::/8", i, cidr))
		} else if p.Masked() != p {
			add(fmt.Errorf("dns.upstreamAllow[%d]: %s has host bits set: use %s", i, cidr, p.Masked()))
		}
	}
	if c.DNS.MaxInFlight < 1 || c.DNS.MaxInFlight > 65536 {
		add(fmt.Errorf("dns.maxInFlight: %d is out of range: use 1-65536 (default %d)", c.DNS.MaxInFlight, dns.DefaultMaxInFlight))
	}
	if c.DNS.MaxTCPConns < 1 || c.DNS.MaxTCPConns > 65536 {
		add(fmt.Errorf("dns.maxTCPConns: %d is out of range: use 1-65536 (default %d)", c.DNS.MaxTCPConns, dns.DefaultMaxTCPConns))
	}
	add(config.CheckCIDR("vipCIDR", c.VIPCIDR))
	if c.VIPCIDR6 != "" {
		add(config.CheckCIDR("vipCIDR6", c.VIPCIDR6))
	}
	if c.Mode == ModeKubernetes {
		add(c.Kubernetes.validate())
		add(c.Kubernetes.LeaderElection.validate(c.Zone))
		add(c.Kubernetes.Injector.validate(c.Zone, c.xdsCAFile(), c.DataDir))
	}
	add(c.Log.Validate("log"))
	return errors.Join(errs...)
}

// apiTLS is how the REST API is served.
func (c Config) apiTLS() apiserver.TLS {
	return apiserver.TLS{CertFile: c.APITLSCert, KeyFile: c.APITLSKey, Generate: c.APITLS,
		Dir: filepath.Join(c.DataDir, "api-tls"), SANs: c.APITLSSANs}
}

// validate checks the Kubernetes settings; the kubeconfig file and the
// namespace are checked when the zone starts, against the API server.
func (k Kubernetes) validate() error {
	var errs []error
	if k.Namespace != "" {
		if msgs := validation.IsDNS1123Label(k.Namespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("kubernetes.namespace: %q is not a namespace name: %s", k.Namespace, strings.Join(msgs, "; ")))
		}
	}
	if k.Context != "" && k.Kubeconfig == "" {
		errs = append(errs, errors.New("kubernetes.context: a kubeconfig context, but no kubeconfig: give --kubeconfig too, or drop it"))
	}
	if k.QPS < 1 || k.QPS > 100000 {
		errs = append(errs, fmt.Errorf("kubernetes.qps: %d is out of range: use 1-100000 (default 1000)", k.QPS))
	}
	if k.Burst < k.QPS || k.Burst > 100000 {
		errs = append(errs, fmt.Errorf("kubernetes.burst: %d is out of range: use kubernetes.qps (%d) to 100000 (default 2000)", k.Burst, k.QPS))
	}
	return errors.Join(errs...)
}

// validate checks the election's timing as client-go's leader election
// needs it (a renewal deadline above 1.2 retry periods, for the jitter)
// and the Lease name, derived from zone when empty.
func (l LeaderElection) validate(zone string) error {
	const p = "kubernetes.leaderElection."
	var errs []error
	if l.LeaseName != "" {
		if msgs := validation.IsDNS1123Subdomain(l.LeaseName); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf(p+"leaseName: %q is not a Lease name: %s", l.LeaseName, strings.Join(msgs, "; ")))
		}
	} else if zone != "" && len(validation.IsDNS1123Subdomain(l.Lease(zone))) > 0 {
		errs = append(errs, fmt.Errorf(p+"leaseName: the default %q is not a Lease name: set one with --leader-election-lease-name", l.Lease(zone)))
	}
	if l.RetryPeriod < 100*time.Millisecond || l.RetryPeriod > time.Minute {
		errs = append(errs, fmt.Errorf(p+"retryPeriod: %s is out of range: use 100ms to 1m (default 2s)", l.RetryPeriod))
	}
	if floor := l.RetryPeriod * 6 / 5; l.RenewDeadline <= floor {
		errs = append(errs, fmt.Errorf(p+"renewDeadline: %s must exceed 1.2 times retryPeriod (%s), so a renewal is retried before it: raise it or lower retryPeriod (defaults 10s and 2s)", l.RenewDeadline, l.RetryPeriod))
	}
	if l.LeaseDuration <= l.RenewDeadline {
		errs = append(errs, fmt.Errorf(p+"leaseDuration: %s must exceed renewDeadline (%s), so a leader stops writing before another may take over: raise it or lower renewDeadline (defaults 15s and 10s)", l.LeaseDuration, l.RenewDeadline))
	}
	if l.LeaseDuration > 10*time.Minute {
		errs = append(errs, fmt.Errorf(p+"leaseDuration: %s is out of range: use at most 10m (default 15s); a dead leader is replaced only after it", l.LeaseDuration))
	}
	return errors.Join(errs...)
}

// checkGlobalAddresses checks globalAddress: one URL, or several replicas
// of one global separated by commas, all grpcs:// or all grpc://.
func checkGlobalAddresses(list string, insecure bool) error {
	urls := splitGlobalAddresses(list)
	var scheme string
	for i, u := range urls {
		setting := "globalAddress"
		if len(urls) > 1 {
			setting = fmt.Sprintf("globalAddress (address %d of %d)", i+1, len(urls))
		}
		if err := config.CheckURL(setting, u, "grpcs", "grpc"); err != nil {
			return err
		}
		s, _, _ := strings.Cut(u, "://")
		switch {
		case scheme != "" && s != scheme:
			return fmt.Errorf("globalAddress: %q is %s:// but %q is %s://: replicas of one global are reached the same way, all grpcs:// or all grpc://", urls[0], scheme, u, s)
		case s == "grpc" && !insecure:
			return fmt.Errorf("%s: %q is plaintext: use grpcs://, or pass --kds-insecure to allow it", setting, u)
		}
		scheme = s
	}
	if len(urls) == 0 {
		return fmt.Errorf("globalAddress: %q names no address: use grpcs://HOST:PORT, or several replicas separated by commas", list)
	}
	return nil
}

// splitGlobalAddresses splits a comma-separated globalAddress, dropping
// spaces and empty elements.
func splitGlobalAddresses(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
