package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/logging"
	"github.com/atoll-mesh/atoll/zone"
)

var zoneSettings = []setting{
	{"zone", "zone", "this zone's name (lowercase letters, digits, '-')"},
	{"mode", "mode", "where Dataplanes come from: universal (the API) or kubernetes (annotated pods)"},
	{"api-addr", "apiAddr", "REST API listen address"},
	{"api-token-file", "apiTokenFile", "file holding the API token callers on other machines must send; empty generates one in the data dir"},
	{"api-auth-loopback", "apiAuthLoopback", "ask loopback callers for the API token too"},
	{"api-tls-cert", "apiTLSCert", "REST API server certificate (PEM), followed on disk; serves the API over TLS"},
	{"api-tls-key", "apiTLSKey", "REST API server key (PEM)"},
	{"api-tls", "apiTLS", "serve the REST API over TLS with a generated certificate (CA in the data dir, served at /api-ca.pem)"},
	{"api-tls-san", "apiTLSSANs", "further DNS names or IP addresses the generated API certificate covers (repeat or comma-separate)"},
	{"api-insecure", "apiInsecure", "serve the REST API in plaintext on an address beyond loopback"},
	{"data-dir", "dataDir", "directory for the zone's state"},
	{"global-address", "globalAddress", "the global's KDS address, grpcs://HOST:PORT"},
	{"global-ca-file", "globalCAFile", "CA (PEM) that signed the global's KDS certificate; the global serves it at /kds-ca.pem"},
	{"global-token-file", "globalTokenFile", "file holding this zone's token from the global (atollctl generate zone-token --zone NAME); read again on every connection"},
	{"kds-insecure", "kdsInsecure", "allow a plaintext grpc:// global address"},
	{"ingress-address", "ingress.address", "address other zones reach this zone's ingress at"},
	{"ingress-port", "ingress.port", "port of this zone's ingress"},
	{"ingress-advertised-address", "ingress.advertisedAddress", "address published to other zones, when it differs (NAT, load balancer)"},
	{"ingress-advertised-port", "ingress.advertisedPort", "port published to other zones, when it differs"},
	{"dns-addr", "dns.addr", "DNS server listen address (UDP and TCP); empty disables it"},
	{"xds-addr", "xds.addr", "xDS server listen address (gRPC) for Envoy sidecars and proxyless gRPC clients; empty disables it"},
	{"xds-require-tokens", "xds.requireTokens", "refuse Dataplanes' proxies without the token of the bootstrap the zone serves (the ingress always needs one; in kubernetes mode pods' proxies always need their ServiceAccount token instead)"},
	{"xds-tls", "xds.tls", "serve xDS over TLS with a certificate the zone keeps in the data dir, or the one in --xds-tls-cert (CA at /xds-ca.pem and in the bootstraps)"},
	{"xds-tls-san", "xds.tlsSANs", "further DNS names or IP addresses the generated xDS certificate covers (repeat or comma-separate)"},
	{"xds-tls-cert", "xds.tlsCert", "with --xds-tls: the xDS server certificate (PEM) every replica serves, instead of a generated one; followed on disk"},
	{"xds-tls-key", "xds.tlsKey", "with --xds-tls-cert: its key (PEM), followed on disk"},
	{"xds-tls-ca", "xds.tlsCA", "with --xds-tls-cert: the CA (PEM) that signed it, served at /xds-ca.pem, put in the bootstraps and given to injected sidecars; followed on disk"},
	{"xds-debounce", "xds.debounce", "gather changes for at most this long before proxies get them (1ms-50ms)"},
	{"dns-domain", "dns.domain", "domain the DNS server answers for"},
	{"dns-ttl", "dns.ttl", "TTL of DNS answers"},
	{"dns-upstream", "dns.upstream", "host:port to forward queries outside the domain to; empty refuses them"},
	{"dns-upstream-allow", "dns.upstreamAllow", "client networks (CIDRs) whose queries outside the domain are forwarded; others get REFUSED (repeat or comma-separate)"},
	{"dns-max-inflight", "dns.maxInFlight", "queries forwarded to the upstream at once; more get SERVFAIL"},
	{"dns-max-tcp-conns", "dns.maxTCPConns", "TCP connections the DNS server serves at once; more wait"},
	{"vip-cidr", "vipCIDR", "range of service VIPs (the global's --vip-cidr)"},
	{"vip-cidr6", "vipCIDR6", "IPv6 range of service VIPs (the global's --vip-cidr6); empty: IPv4 only"},
	{"kubeconfig", "kubernetes.kubeconfig", "kubernetes mode: kubeconfig file; empty uses the in-cluster config"},
	{"kube-context", "kubernetes.context", "kubernetes mode: kubeconfig context; empty uses the current one"},
	{"namespace", "kubernetes.namespace", "kubernetes mode: the zone's system namespace (its ZoneIngress, remote state, leader Lease); empty uses the pod's own"},
	{"kube-api-qps", "kubernetes.qps", "kubernetes mode: requests per second to the API server (watches excluded)"},
	{"kube-api-burst", "kubernetes.burst", "kubernetes mode: burst of requests to the API server"},
	{"leader-election-lease-name", "kubernetes.leaderElection.leaseName", "kubernetes mode: the Lease the zone's replicas compete for, in --namespace; empty uses atoll-zone-<zone>"},
	{"leader-election-lease-duration", "kubernetes.leaderElection.leaseDuration", "kubernetes mode: how long after the leader's last renewal another replica takes over"},
	{"leader-election-renew-deadline", "kubernetes.leaderElection.renewDeadline", "kubernetes mode: how long the leader tries to renew before it stops writing (below the lease duration)"},
	{"leader-election-retry-period", "kubernetes.leaderElection.retryPeriod", "kubernetes mode: wait between attempts to acquire or renew the Lease"},
	{"injector-addr", "kubernetes.injector.addr", "kubernetes mode: the sidecar injector's HTTPS listen address (e.g. :5443); empty disables it"},
	{"injector-tls-cert", "kubernetes.injector.tlsCert", "kubernetes mode: the injector's certificate (PEM), followed on disk; empty generates one in the data dir"},
	{"injector-tls-key", "kubernetes.injector.tlsKey", "kubernetes mode: the injector's key (PEM)"},
	{"injector-tls-san", "kubernetes.injector.tlsSANs", "kubernetes mode: names the generated injector certificate covers, such as the webhook Service's <service>.<namespace>.svc (repeat or comma-separate)"},
	{"injector-webhook-name", "kubernetes.injector.webhookName", "kubernetes mode: the MutatingWebhookConfiguration whose caBundle the zone keeps holding its generated CA; empty: none"},
	{"injector-sidecar-image", "kubernetes.injector.sidecarImage", "kubernetes mode: image of the injected sidecar (atoll sidecar, Envoy)"},
	{"injector-init-image", "kubernetes.injector.initImage", "kubernetes mode: image of the injected init container (atoll transparent-proxy install, iptables)"},
	{"injector-envoy-log-level", "kubernetes.injector.envoyLogLevel", "kubernetes mode: the injected Envoy's log level (trace, debug, info, warning, error, critical, off)"},
	{"injector-xds-address", "kubernetes.injector.xdsAddress", "kubernetes mode: host:port of the zone's xDS Service the injected sidecars connect to"},
	{"injector-dns-address", "kubernetes.injector.dnsAddress", "kubernetes mode: host:port of the zone's DNS Service the injected sidecars send .mesh queries to"},
	{"injector-xds-ca-file", "kubernetes.injector.xdsCAFile", "kubernetes mode: the CA (PEM) injected sidecars verify the zone's xDS server with; empty: --xds-tls-ca, or the zone's own xDS CA, with --xds-tls, else plaintext"},
	{"injector-native-sidecar", "kubernetes.injector.nativeSidecar", "kubernetes mode: inject the sidecar as a native sidecar (Kubernetes 1.29+), ready before the application starts and stopped after it; false for older clusters"},
	{"injector-cpu-request", "kubernetes.injector.cpuRequest", "kubernetes mode: the sidecar's CPU request; empty sets none"},
	{"injector-memory-request", "kubernetes.injector.memoryRequest", "kubernetes mode: the sidecar's memory request; empty sets none"},
	{"injector-cpu-limit", "kubernetes.injector.cpuLimit", "kubernetes mode: the sidecar's CPU limit; empty sets none"},
	{"injector-memory-limit", "kubernetes.injector.memoryLimit", "kubernetes mode: the sidecar's memory limit; empty sets none"},
	{"log-level", "log.level", "log level: debug, info, warn, error"},
	{"log-format", "log.format", "log format: text or json"},
}

func zoneCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zone",
		Short: "Run a zone control plane",
		Long: `Run a zone control plane. In universal mode Dataplanes are registered
through its REST API (or atollctl apply) and kept under --data-dir. In
kubernetes mode the zone makes Dataplanes of the pods in the mesh and keeps
its state as custom resources (install charts/atoll/crds first).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := zone.Default()
			if err := load(cmd, &cfg, zoneSettings); err != nil {
				return err
			}
			if done, err := printConfig(cmd, cfg); done {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := logging.New(cfg.Log, os.Stderr)
			// The process's own messages (a signal received) in the same
			// format.
			slog.SetDefault(log)
			// A taken port is named by the flag the user typed.
			return config.NameFlags(zone.Run(cmd.Context(), cfg, log), flagsByKey(zoneSettings))
		},
	}
	bindSettings(cmd, zone.Default(), zoneSettings)
	return cmd
}
