package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/atoll-mesh/atoll/internal/sidecar/dnsproxy"
	"github.com/atoll-mesh/atoll/internal/sidecar/envoy"
	"github.com/atoll-mesh/atoll/internal/sidecar/xdsrelay"
	"github.com/atoll-mesh/atoll/internal/transparentproxy"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// Files in the run directory.
const (
	BootstrapFile = "envoy.json"
	SocketFile    = "xds.sock"
)

// resolveTimeout bounds the lookup of the zone's DNS Service at start.
const resolveTimeout = 10 * time.Second

// NodeID is the node.id of the pod's Envoy: <mesh>.<the pod's Dataplane
// name>, the Dataplane the zone made of the pod.
func NodeID(mesh, namespace, pod string) string {
	return mesh + "." + kubernetes.DataplaneName(namespace, pod)
}

// Run runs the sidecar with cfg (validated by the caller) until ctx ends
// and everything has stopped, or Envoy exits by itself (*envoy.ExitError).
// Envoy writes to stdout and stderr.
func Run(ctx context.Context, cfg Config, log *slog.Logger, stdout, stderr io.Writer) error {
	p, err := prepare(ctx, cfg, log, stdout, stderr)
	if err != nil {
		return err
	}
	return p.run(ctx)
}

// parts is the sidecar ready to run: every input checked, sockets bound.
type parts struct {
	log      *slog.Logger
	dns      []*dnsproxy.Proxy
	relay    *xdsrelay.Relay
	relayLis net.Listener
	envoy    *envoy.Envoy
}

// prepare checks what cannot be checked without the outside world (the
// DNS name, the token, Envoy's binary, the run directory), then binds the
// DNS proxy and the relay's socket and writes Envoy's bootstrap.
func prepare(ctx context.Context, cfg Config, log *slog.Logger, stdout, stderr io.Writer) (*parts, error) {
	nodeID := NodeID(cfg.Mesh, cfg.PodNamespace, cfg.PodName)
	log = log.With("node", nodeID)
	if _, err := readToken(cfg.TokenFile); err != nil {
		return nil, fmt.Errorf("%s: %w", Name("tokenFile"), err)
	}
	zoneDNS, err := resolve(ctx, cfg.DNSAddress)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", Name("dnsAddress"), cfg.DNSAddress, err)
	}
	upstream, err := dnsproxy.UpstreamFromResolvConf(cfg.ResolvConf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name("resolvConf"), err)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w: mount a writable volume there (the webhook mounts an emptyDir)", Name("runDir"), err)
	}
	sock := filepath.Join(cfg.RunDir, SocketFile)
	if !filepath.IsAbs(sock) {
		if sock, err = filepath.Abs(sock); err != nil {
			return nil, fmt.Errorf("%s: %w", Name("runDir"), err)
		}
	}
	boot, err := xds.SidecarBootstrap(nodeID, cfg.Mesh, sock, cfg.AdminPort)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name("runDir"), err)
	}
	// The pod's IPv6 connections, which the init container redirects when
	// the pod has IPv6 (transparentproxy.HasIPv6), reach Envoy here.
	hasIPv6, v6, err := transparentproxy.HasIPv6()
	if err != nil {
		return nil, fmt.Errorf("deciding whether the pod has IPv6: %w", err)
	}
	if hasIPv6 {
		boot.StaticResources.Listeners = append(boot.StaticResources.Listeners, xds.VirtualOutboundIPv6())
		log.Info("the pod has IPv6: Envoy takes its redirected IPv6 connections too", "address", v6, "listener", xds.VirtualOutboundIPv6Name)
	}
	bootJSON, err := xds.EnvoyBootstrapJSON(boot)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	bootPath := filepath.Join(filepath.Dir(sock), BootstrapFile)
	e, err := envoy.New(envoy.Config{
		Binary: cfg.EnvoyBinary,
		Args:   envoy.Args(bootPath, cfg.EnvoyLogLevel, cfg.DrainDuration),
		Drain:  cfg.DrainDuration,
		Stdout: stdout, Stderr: stderr,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name("envoyBinary"), err)
	}
	relay, err := xdsrelay.New(xdsrelay.Config{Upstream: cfg.XDSAddress, CAPEM: []byte(cfg.XDSCA), TokenFile: cfg.TokenFile, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name("xdsAddress"), err)
	}

	p := &parts{log: log, relay: relay, envoy: e}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()
	if p.dns, err = dnsProxies(cfg, zoneDNS, upstream, log); err != nil {
		return nil, err
	}
	if p.relayLis, err = xdsrelay.ListenUnix(sock); err != nil {
		return nil, fmt.Errorf("%s: %w", Name("runDir"), err)
	}
	if err := writeFileAtomic(bootPath, bootJSON); err != nil {
		return nil, fmt.Errorf("%s: writing Envoy's bootstrap: %w", Name("runDir"), err)
	}
	var dnsAddrs []string
	for _, d := range p.dns {
		dnsAddrs = append(dnsAddrs, d.Addr())
	}
	log.Info("sidecar starting", "pod", cfg.PodNamespace+"/"+cfg.PodName, "mesh", cfg.Mesh, "zone", cfg.Zone,
		"xds", cfg.XDSAddress, "xds_tls", cfg.XDSCA != "", "zone_dns", zoneDNS, "cluster_dns", upstream,
		"dns", dnsAddrs, "relay", sock, "bootstrap", bootPath, "envoy", e.Path(), "drain", cfg.DrainDuration)
	ok = true
	return p, nil
}

// close releases what prepare bound, when Run does not get to.
func (p *parts) close() {
	for _, d := range p.dns {
		// Run on a done context only releases the sockets.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = d.Run(ctx)
	}
	if p.relayLis != nil {
		p.relayLis.Close()
	}
}

// run serves DNS and the relay, runs Envoy and, when ctx ends or a part
// fails, stops Envoy (after its drain), then the others.
func (p *parts) run(ctx context.Context) error {
	envoyCtx, stopEnvoy := context.WithCancel(ctx)
	defer stopEnvoy()
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var serveErrs []error
	serve := func(run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(serveCtx); err != nil {
				mu.Lock()
				serveErrs = append(serveErrs, err)
				mu.Unlock()
				stopEnvoy() // a sidecar without its DNS or relay is broken: restart it
			}
		}()
	}
	for _, d := range p.dns {
		serve(d.Run)
	}
	serve(func(ctx context.Context) error { return p.relay.Run(ctx, p.relayLis) })

	envoyErr := p.envoy.Run(envoyCtx)
	stopServing()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if envoyErr != nil {
		return envoyErr
	}
	if err := errors.Join(serveErrs...); err != nil {
		return err
	}
	p.log.Info("sidecar stopped")
	return nil
}

// dnsProxies binds the DNS proxy on IPv4 loopback and, when the pod has
// it, on IPv6 loopback on the same port.
func dnsProxies(cfg Config, zoneDNS, upstream string, log *slog.Logger) ([]*dnsproxy.Proxy, error) {
	pc := dnsproxy.Default()
	pc.Mesh, pc.Upstream = zoneDNS, upstream
	pc.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.DNSPort))
	v4, err := dnsproxy.New(pc, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: is another process using the port?", Name("dnsPort"), err)
	}
	_, port, _ := net.SplitHostPort(v4.Addr()) // the port 0 became
	pc.Listen = net.JoinHostPort("::1", port)
	v6, err := dnsproxy.New(pc, log)
	switch {
	case err == nil:
		return []*dnsproxy.Proxy{v4, v6}, nil
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
		log.Info("no IPv6 loopback: the DNS proxy serves IPv4 only", "reason", err)
		return []*dnsproxy.Proxy{v4}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = v4.Run(ctx) // releases its sockets
	return nil, fmt.Errorf("%s: %w: is another process using the port?", Name("dnsPort"), err)
}

// resolve turns host:port into ip:port, looking a name up through the
// system's resolver (in a pod, the cluster DNS of its resolv.conf).
func resolve(ctx context.Context, hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.String(), port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w: check the name of the zone's DNS Service, or give its IP", host, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolving %s: no address: check the name of the zone's DNS Service, or give its IP", host)
	}
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}

// readToken checks the token file is there and holds something; the relay
// reads it again for every stream.
func readToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: the webhook projects the pod's ServiceAccount token there; outside a pod give a file holding one", err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty: it must hold the pod's ServiceAccount token", path)
	}
	return b, nil
}

// writeFileAtomic writes data to path through a temporary file renamed
// over it: Envoy never reads half a bootstrap.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
