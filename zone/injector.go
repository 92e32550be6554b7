package zone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"golang.org/x/sync/errgroup"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/zone/kubernetes/inject"
)

// Injector configures the sidecar injector, the mutating admission webhook
// a Kubernetes zone serves (zone/kubernetes/inject).
type Injector struct {
	// Addr is its HTTPS listener (such as :5443); empty disables it.
	Addr string `yaml:"addr" json:"addr"`
	// TLSCert and TLSKey are its serving certificate, followed on disk
	// (cert-manager's, whose CA its cainjector puts in the caBundle).
	// Empty: a CA and certificate are kept in dataDir/injector-tls and the
	// CA is put into the caBundle of WebhookName.
	TLSCert string `yaml:"tlsCert" json:"tlsCert"`
	TLSKey  string `yaml:"tlsKey" json:"tlsKey"`
	// TLSSANs are names the generated certificate covers besides
	// loopback and this machine's: the webhook Service's DNS name.
	TLSSANs []string `yaml:"tlsSANs" json:"tlsSANs"`
	// WebhookName is the MutatingWebhookConfiguration whose caBundle every
	// replica keeps holding its generated CA; empty: none.
	WebhookName string `yaml:"webhookName" json:"webhookName"`
	// SidecarImage, InitImage, EnvoyLogLevel, XDSAddress and the
	// resources are what injected pods get (inject.Config).
	SidecarImage  string `yaml:"sidecarImage" json:"sidecarImage"`
	InitImage     string `yaml:"initImage" json:"initImage"`
	EnvoyLogLevel string `yaml:"envoyLogLevel" json:"envoyLogLevel"`
	XDSAddress    string `yaml:"xdsAddress" json:"xdsAddress"`
	// DNSAddress is the zone's DNS Service (host:port) the sidecars send
	// `.mesh` queries to.
	DNSAddress string `yaml:"dnsAddress" json:"dnsAddress"`
	// XDSCAFile is the CA the sidecars verify the zone's xDS server with
	// (a Secret's file shared by every replica). Empty: xds.tlsCA, or the
	// CA the zone keeps in dataDir/xds-tls, when xds.tls is on, else
	// plaintext.
	XDSCAFile string `yaml:"xdsCAFile" json:"xdsCAFile"`
	// NativeSidecar injects the sidecar as a Kubernetes native sidecar
	// (1.29 and later): started and ready before the application, stopped
	// after it (inject.Config.NativeSidecar).
	NativeSidecar bool   `yaml:"nativeSidecar" json:"nativeSidecar"`
	CPURequest    string `yaml:"cpuRequest" json:"cpuRequest"`
	MemoryRequest string `yaml:"memoryRequest" json:"memoryRequest"`
	CPULimit      string `yaml:"cpuLimit" json:"cpuLimit"`
	MemoryLimit   string `yaml:"memoryLimit" json:"memoryLimit"`

	// listener is Addr, bound by Run before anything starts.
	listener net.Listener
}

func defaultInjector() Injector {
	d := inject.Default()
	return Injector{TLSSANs: []string{}, WebhookName: inject.DefaultWebhookName,
		SidecarImage: d.SidecarImage, InitImage: d.InitImage, EnvoyLogLevel: d.EnvoyLogLevel, NativeSidecar: d.NativeSidecar,
		CPURequest: d.Resources.CPURequest, MemoryRequest: d.Resources.MemoryRequest,
		CPULimit: d.Resources.CPULimit, MemoryLimit: d.Resources.MemoryLimit}
}

// config is what injected pods get; xdsCA is the CA of the zone's xDS
// certificate (Config.xdsCAFile), used when no CA file is given.
func (i Injector) config(zone, xdsCA string) inject.Config {
	ca := cmp.Or(i.XDSCAFile, xdsCA)
	if ca != "" {
		if abs, err := filepath.Abs(ca); err == nil {
			ca = abs
		}
	}
	return inject.Config{SidecarImage: i.SidecarImage, InitImage: i.InitImage, EnvoyLogLevel: i.EnvoyLogLevel,
		XDSAddress: i.XDSAddress, DNSAddress: i.DNSAddress, XDSCAFile: ca, Zone: zone, NativeSidecar: i.NativeSidecar,
		Resources: inject.Resources{CPURequest: i.CPURequest, MemoryRequest: i.MemoryRequest, CPULimit: i.CPULimit, MemoryLimit: i.MemoryLimit}}
}

func (i Injector) serveConfig(dataDir string) inject.ServeConfig {
	return inject.ServeConfig{Addr: i.Addr, Listener: i.listener, CertFile: i.TLSCert, KeyFile: i.TLSKey,
		Dir: filepath.Join(dataDir, "injector-tls"), Hosts: i.TLSSANs, WebhookName: i.WebhookName}
}

// validate checks the injector's settings when it is enabled; xdsCA is
// the CA of the zone's xDS certificate, empty when xDS is plaintext.
func (i Injector) validate(zone, xdsCA, dataDir string) error {
	if i.Addr == "" {
		return nil
	}
	if i.XDSAddress == "" {
		return errors.New("kubernetes.injector.xdsAddress: is required with kubernetes.injector.addr: set --injector-xds-address to the zone's xDS Service, such as atoll-zone.atoll-system.svc:5678")
	}
	if i.DNSAddress == "" {
		return errors.New("kubernetes.injector.dnsAddress: is required with kubernetes.injector.addr: set --injector-dns-address to the zone's DNS Service, such as atoll-zone-dns.atoll-system.svc:53")
	}
	if i.XDSCAFile != "" && xdsCA == "" {
		return errors.New("kubernetes.injector.xdsCAFile: the zone serves xDS in plaintext (xds.tls is off), so sidecars would fail to connect: turn on --xds-tls or leave --injector-xds-ca-file empty")
	}
	if err := i.serveConfig(dataDir).Validate(); err != nil {
		return fmt.Errorf("kubernetes.injector: %w", err)
	}
	if i.XDSCAFile != "" {
		// A file the user gives must be there at start; the zone's own CA
		// is made when its xDS server starts (both are read again at every
		// admission).
		if _, err := inject.ReadCA(i.XDSCAFile); err != nil {
			return fmt.Errorf("kubernetes.injector.xdsCAFile: %w", err)
		}
	}
	if err := i.config(zone, xdsCA).Validate(); err != nil {
		return fmt.Errorf("kubernetes.injector: %w", err)
	}
	return nil
}

// withInjector returns watch with the injector (when cfg enables it)
// running beside it: every replica serves the webhook, since the API
// server calls whichever the Service picks, and keeps its CA in the
// caBundle.
func withInjector(watch func(context.Context) error, client k8s.Interface, cfg Config, log *slog.Logger) (func(context.Context) error, error) {
	ic := cfg.Kubernetes.Injector
	if ic.Addr == "" {
		return watch, nil
	}
	handler, err := inject.NewHandler(ic.config(cfg.Zone, cfg.xdsCAFile()), inject.APINamespaces{Client: client.CoreV1().Namespaces()}, log)
	if err != nil {
		return nil, err
	}
	srv, err := inject.NewServer(ic.serveConfig(cfg.DataDir), handler, client.AdmissionregistrationV1().MutatingWebhookConfigurations(), log)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return watch(ctx) })
		g.Go(func() error { return srv.Run(ctx) })
		return g.Wait()
	}, nil
}
