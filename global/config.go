package global

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/logging"
)

// Config is the global control plane's configuration.
type Config struct {
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
	// KDSAddr is where zones connect (the KDS gRPC server).
	KDSAddr string `yaml:"kdsAddr" json:"kdsAddr"`
	// DataDir holds the embedded etcd's data.
	DataDir string         `yaml:"dataDir" json:"dataDir"`
	Etcd    Etcd           `yaml:"etcd" json:"etcd"`
	KDS     KDS            `yaml:"kds" json:"kds"`
	VIP     VIP            `yaml:"vip" json:"vip"`
	Log     logging.Config `yaml:"log" json:"log"`
}

// VIP configures virtual IP allocation.
type VIP struct {
	// CIDR is the range VIPs come from; zones must use the same.
	CIDR string `yaml:"cidr" json:"cidr"`
	// CIDR6, when set, also gives every service an IPv6 VIP (AAAA).
	CIDR6 string `yaml:"cidr6" json:"cidr6"`
	// Cooldown keeps a VIP whose service disappeared everywhere before it
	// is released and may be reused.
	Cooldown time.Duration `yaml:"cooldown" json:"cooldown"`
}

// KDS configures zone sync.
type KDS struct {
	// TLSCert and TLSKey serve KDS; both empty makes the global generate a
	// CA and certificate in dataDir and serve the CA at /kds-ca.pem.
	TLSCert string `yaml:"tlsCert" json:"tlsCert"`
	TLSKey  string `yaml:"tlsKey" json:"tlsKey"`
	// TLSSANs are further DNS names and IP addresses the generated
	// certificate covers, besides loopback and this machine's host name and
	// addresses: the names zones reach the global by (a load balancer, a
	// Kubernetes Service). Adding one re-issues the certificate with the
	// same CA.
	TLSSANs []string `yaml:"tlsSANs" json:"tlsSANs"`
	// Insecure serves plaintext; zones must opt in too.
	Insecure bool `yaml:"insecure" json:"insecure"`
	// ZoneAuth is how zones prove who they are: "token" (a zone token the
	// global issued, on every stream) or "none" (any client that reaches
	// KDS may act as any zone: for experiments only).
	ZoneAuth string `yaml:"zoneAuth" json:"zoneAuth"`
	// MaxMessageSize bounds every KDS message, in bytes.
	MaxMessageSize int `yaml:"maxMessageSize" json:"maxMessageSize"`
	// Debounce gathers changes before they are pushed to zones.
	Debounce time.Duration `yaml:"debounce" json:"debounce"`
	// ZoneOfflineAfter marks a zone offline when it has not been heard
	// from for this long; then, too, another process connecting with the
	// zone's name replaces its session (until then it is refused).
	ZoneOfflineAfter time.Duration `yaml:"zoneOfflineAfter" json:"zoneOfflineAfter"`
	// WithdrawOfflineAfter withdraws the services of a zone that has been
	// offline this long from every other zone; 0 keeps them (its data
	// plane may still work while its control plane is cut off).
	WithdrawOfflineAfter time.Duration `yaml:"withdrawOfflineAfter" json:"withdrawOfflineAfter"`
	// MaxResourcesPerZone bounds how many resources one zone may keep at
	// the global; further new ones are refused (NACKed) one by one.
	MaxResourcesPerZone int `yaml:"maxResourcesPerZone" json:"maxResourcesPerZone"`
	// MaxStreams bounds concurrent zone streams on this replica.
	MaxStreams int `yaml:"maxStreams" json:"maxStreams"`
	// MaxPendingStreams bounds streams not yet identified (Hello and
	// credentials not yet checked; each has 10s for it).
	MaxPendingStreams int `yaml:"maxPendingStreams" json:"maxPendingStreams"`
	// MaxPendingStreamsPerPeer bounds those from one IP address.
	MaxPendingStreamsPerPeer int `yaml:"maxPendingStreamsPerPeer" json:"maxPendingStreamsPerPeer"`
	// MaxStreamsPerConnection bounds concurrent streams on one connection.
	MaxStreamsPerConnection int `yaml:"maxStreamsPerConnection" json:"maxStreamsPerConnection"`
	// MaxConnectionsPerPeer bounds open connections from one IP address;
	// 0 means no limit (zones behind one NAT or proxy share an address).
	MaxConnectionsPerPeer int `yaml:"maxConnectionsPerPeer" json:"maxConnectionsPerPeer"`
	// IdleConnectionTimeout closes connections that carry no stream for
	// this long.
	IdleConnectionTimeout time.Duration `yaml:"idleConnectionTimeout" json:"idleConnectionTimeout"`
}

// Etcd says which etcd holds the global's state.
type Etcd struct {
	// Endpoints of an external etcd cluster. Empty runs an embedded
	// single-node etcd in DataDir.
	Endpoints []string `yaml:"endpoints" json:"endpoints"`
	// ClientAddr and PeerAddr are the embedded etcd's listeners.
	ClientAddr string `yaml:"clientAddr" json:"clientAddr"`
	PeerAddr   string `yaml:"peerAddr" json:"peerAddr"`
	// Prefix is the key prefix of atoll's data, so installations can share
	// an etcd cluster.
	Prefix      string        `yaml:"prefix" json:"prefix"`
	DialTimeout time.Duration `yaml:"dialTimeout" json:"dialTimeout"`
	// TLS files for an external cluster; all empty means plaintext.
	CAFile   string `yaml:"caFile" json:"caFile"`
	CertFile string `yaml:"certFile" json:"certFile"`
	KeyFile  string `yaml:"keyFile" json:"keyFile"`
}

// Zone authentication modes (kds.zoneAuth).
const (
	ZoneAuthToken = "token"
	ZoneAuthNone  = "none"
)

// DefaultYAML is Default() as YAML, shipped as a reference.
//
//go:embed defaults.yaml
var DefaultYAML []byte

// Default returns the built-in defaults.
func Default() Config {
	return Config{
		APIAddr: "127.0.0.1:5681",
		KDSAddr: ":5685",
		DataDir: "/var/lib/atoll/global",

		APITLSSANs: []string{},
		Etcd: Etcd{
			ClientAddr:  "127.0.0.1:2379",
			PeerAddr:    "127.0.0.1:2380",
			Prefix:      "/atoll/",
			DialTimeout: 5 * time.Second,
		},
		KDS: KDS{
			ZoneAuth:         ZoneAuthToken,
			MaxMessageSize:   4 << 20,
			Debounce:         20 * time.Millisecond,
			ZoneOfflineAfter: 30 * time.Second,

			MaxResourcesPerZone:      50000,
			MaxStreams:               10000,
			MaxPendingStreams:        256,
			MaxPendingStreamsPerPeer: 16,
			MaxStreamsPerConnection:  8,
			MaxConnectionsPerPeer:    100,
			IdleConnectionTimeout:    5 * time.Minute,
		},
		VIP: VIP{CIDR: "240.0.0.0/4", Cooldown: time.Hour},
		Log: logging.Default(),
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
	add(config.CheckListenAddr("apiAddr", c.APIAddr))
	add(c.apiTLS().Check(c.APIAddr, c.APIInsecure))
	add(config.CheckListenAddr("kdsAddr", c.KDSAddr))
	if c.DataDir == "" {
		add(errors.New("dataDir: is required: name a directory for the global's data"))
	}
	if len(c.Etcd.Endpoints) == 0 {
		add(config.CheckListenAddr("etcd.clientAddr", c.Etcd.ClientAddr))
		add(config.CheckListenAddr("etcd.peerAddr", c.Etcd.PeerAddr))
	}
	for i, e := range c.Etcd.Endpoints {
		add(config.CheckURL(fmt.Sprintf("etcd.endpoints[%d]", i), e, "http", "https"))
	}
	if c.Etcd.Prefix == "" || c.Etcd.Prefix[0] != '/' {
		add(fmt.Errorf("etcd.prefix: %q must start with '/' (e.g. /atoll/)", c.Etcd.Prefix))
	}
	if c.Etcd.DialTimeout <= 0 {
		add(fmt.Errorf("etcd.dialTimeout: %s must be positive (e.g. 5s)", c.Etcd.DialTimeout))
	}
	if (c.Etcd.CertFile == "") != (c.Etcd.KeyFile == "") {
		add(errors.New("etcd.certFile and etcd.keyFile: give both, or neither"))
	}
	if len(c.Etcd.Endpoints) == 0 && (c.Etcd.CAFile != "" || c.Etcd.CertFile != "") {
		add(errors.New("etcd TLS files apply to an external cluster: give etcd.endpoints too, or drop them"))
	}
	if (c.KDS.TLSCert == "") != (c.KDS.TLSKey == "") {
		add(errors.New("kds.tlsCert and kds.tlsKey: give both, or neither (the global then generates its own)"))
	}
	if c.KDS.Insecure && c.KDS.TLSCert != "" {
		add(errors.New("kds.insecure: plaintext was asked for, but kds.tlsCert is set too: choose one"))
	}
	if len(c.KDS.TLSSANs) > 0 && (c.KDS.TLSCert != "" || c.KDS.Insecure) {
		add(errors.New("kds.tlsSANs: names for the generated certificate, but kds.tlsCert or kds.insecure is set: drop one"))
	}
	for i, san := range c.KDS.TLSSANs {
		if net.ParseIP(san) == nil && !config.IsDNSName(san) {
			add(fmt.Errorf("kds.tlsSANs[%d]: %q is neither an IP address nor a DNS name (e.g. atoll-global.example.com, 10.0.0.5; no port, no scheme)", i, san))
		}
	}
	if c.KDS.ZoneAuth != ZoneAuthToken && c.KDS.ZoneAuth != ZoneAuthNone {
		add(fmt.Errorf("kds.zoneAuth: %q is not a mode: use token (zones present a token the global issued) or none (any client may act as any zone: experiments only)", c.KDS.ZoneAuth))
	}
	if c.KDS.MaxMessageSize < 256<<10 || c.KDS.MaxMessageSize > 64<<20 {
		add(fmt.Errorf("kds.maxMessageSize: %d is out of range: use 262144 (256 KiB) to 67108864 (64 MiB)", c.KDS.MaxMessageSize))
	}
	if c.KDS.Debounce < 0 || c.KDS.Debounce > 10*time.Second {
		add(fmt.Errorf("kds.debounce: %s is out of range: use 0s to 10s", c.KDS.Debounce))
	}
	if c.KDS.ZoneOfflineAfter < time.Second {
		add(fmt.Errorf("kds.zoneOfflineAfter: %s is too short: use at least 1s (default 30s)", c.KDS.ZoneOfflineAfter))
	}
	if c.KDS.WithdrawOfflineAfter < 0 || (c.KDS.WithdrawOfflineAfter > 0 && c.KDS.WithdrawOfflineAfter < c.KDS.ZoneOfflineAfter) {
		add(fmt.Errorf("kds.withdrawOfflineAfter: %s must be 0 (keep) or at least kds.zoneOfflineAfter (%s)", c.KDS.WithdrawOfflineAfter, c.KDS.ZoneOfflineAfter))
	}
	add(c.KDS.validateLimits())
	add(config.CheckCIDR("vip.cidr", c.VIP.CIDR))
	if c.VIP.CIDR6 != "" {
		add(config.CheckCIDR("vip.cidr6", c.VIP.CIDR6))
	}
	if c.VIP.Cooldown < 0 {
		add(fmt.Errorf("vip.cooldown: %s must not be negative (default 1h)", c.VIP.Cooldown))
	}
	add(c.Log.Validate("log"))
	return errors.Join(errs...)
}

// apiTLS is how the REST API is served.
func (c Config) apiTLS() apiserver.TLS {
	return apiserver.TLS{CertFile: c.APITLSCert, KeyFile: c.APITLSKey, Generate: c.APITLS,
		Dir: filepath.Join(c.DataDir, "api-tls"), SANs: c.APITLSSANs}
}

// validateLimits checks the bounds on what zones may hold open and store.
func (k KDS) validateLimits() error {
	var errs []error
	atLeast := func(name string, v, least int, example string) {
		if v < least {
			errs = append(errs, fmt.Errorf("kds.%s: %d must be at least %d (default %s)", name, v, least, example))
		}
	}
	atLeast("maxResourcesPerZone", k.MaxResourcesPerZone, 1, "50000")
	atLeast("maxStreams", k.MaxStreams, 1, "10000")
	atLeast("maxPendingStreams", k.MaxPendingStreams, 1, "256")
	atLeast("maxPendingStreamsPerPeer", k.MaxPendingStreamsPerPeer, 1, "16")
	atLeast("maxStreamsPerConnection", k.MaxStreamsPerConnection, 1, "8")
	if k.MaxStreamsPerConnection > 1000 {
		errs = append(errs, fmt.Errorf("kds.maxStreamsPerConnection: %d is too many: use at most 1000 (a zone needs one; default 8)", k.MaxStreamsPerConnection))
	}
	atLeast("maxConnectionsPerPeer", k.MaxConnectionsPerPeer, 0, "100; 0 means no limit")
	if k.IdleConnectionTimeout < time.Second {
		errs = append(errs, fmt.Errorf("kds.idleConnectionTimeout: %s is too short: use at least 1s (default 5m)", k.IdleConnectionTimeout))
	}
	return errors.Join(errs...)
}
