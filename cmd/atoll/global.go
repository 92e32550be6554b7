package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/global"
	"github.com/atoll-mesh/atoll/internal/config"
	"github.com/atoll-mesh/atoll/internal/logging"
)

var globalSettings = []setting{
	{"api-addr", "apiAddr", "REST API listen address"},
	{"api-token-file", "apiTokenFile", "file holding the API token callers on other machines must send; empty generates one in the data dir"},
	{"api-auth-loopback", "apiAuthLoopback", "ask loopback callers for the API token too"},
	{"api-tls-cert", "apiTLSCert", "REST API server certificate (PEM), followed on disk; serves the API over TLS"},
	{"api-tls-key", "apiTLSKey", "REST API server key (PEM)"},
	{"api-tls", "apiTLS", "serve the REST API over TLS with a generated certificate (CA in the data dir, served at /api-ca.pem)"},
	{"api-tls-san", "apiTLSSANs", "further DNS names or IP addresses the generated API certificate covers (repeat or comma-separate)"},
	{"api-insecure", "apiInsecure", "serve the REST API in plaintext on an address beyond loopback"},
	{"kds-addr", "kdsAddr", "KDS (zone sync) listen address"},
	{"data-dir", "dataDir", "directory for the global's data (embedded etcd)"},
	{"etcd-endpoints", "etcd.endpoints", "external etcd endpoints, comma-separated; empty runs an embedded etcd"},
	{"etcd-client-addr", "etcd.clientAddr", "embedded etcd's client listen address"},
	{"etcd-peer-addr", "etcd.peerAddr", "embedded etcd's peer listen address"},
	{"etcd-prefix", "etcd.prefix", "key prefix of atoll's data in etcd"},
	{"etcd-dial-timeout", "etcd.dialTimeout", "timeout for reaching etcd"},
	{"etcd-ca-file", "etcd.caFile", "CA certificate of an external etcd cluster"},
	{"etcd-cert-file", "etcd.certFile", "client certificate for an external etcd cluster"},
	{"etcd-key-file", "etcd.keyFile", "client key for an external etcd cluster"},
	{"kds-tls-cert", "kds.tlsCert", "KDS server certificate (PEM); empty generates a CA and certificate in the data dir"},
	{"kds-tls-key", "kds.tlsKey", "KDS server key (PEM)"},
	{"kds-tls-san", "kds.tlsSANs", "further DNS names or IP addresses the generated KDS certificate covers (repeat or comma-separate)"},
	{"kds-insecure", "kds.insecure", "serve KDS in plaintext (zones must pass --kds-insecure too)"},
	{"kds-zone-auth", "kds.zoneAuth", "how zones authenticate: token (issued with atollctl generate zone-token) or none (experiments only)"},
	{"kds-max-message-size", "kds.maxMessageSize", "largest KDS message in bytes; larger changes are split"},
	{"kds-debounce", "kds.debounce", "time to gather changes before pushing them to zones"},
	{"zone-offline-after", "kds.zoneOfflineAfter", "a zone not heard from for this long is shown offline, and another process with its name may take its place"},
	{"withdraw-offline-after", "kds.withdrawOfflineAfter", "withdraw an offline zone's services from the others after this long (0: keep them)"},
	{"max-resources-per-zone", "kds.maxResourcesPerZone", "most resources one zone may keep at the global; new ones beyond are refused"},
	{"kds-max-streams", "kds.maxStreams", "most zone streams served at once"},
	{"kds-max-pending-streams", "kds.maxPendingStreams", "most KDS streams not yet identified (Hello and token not yet checked)"},
	{"kds-max-pending-streams-per-peer", "kds.maxPendingStreamsPerPeer", "most KDS streams not yet identified from one IP address"},
	{"kds-max-streams-per-connection", "kds.maxStreamsPerConnection", "most concurrent streams on one KDS connection"},
	{"kds-max-connections-per-peer", "kds.maxConnectionsPerPeer", "most open KDS connections from one IP address (0: no limit)"},
	{"kds-idle-connection-timeout", "kds.idleConnectionTimeout", "close KDS connections that carry no stream for this long"},
	{"vip-cidr", "vip.cidr", "range of service VIPs (zones must use the same)"},
	{"vip-cidr6", "vip.cidr6", "IPv6 range of service VIPs (AAAA); empty: IPv4 only"},
	{"vip-cooldown", "vip.cooldown", "how long a VIP whose service disappeared is kept before it may be reused"},
	{"log-level", "log.level", "log level: debug, info, warn, error"},
	{"log-format", "log.format", "log format: text or json"},
}

func globalCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "global",
		Short: "Run the global control plane",
		Long: `Run the global control plane: the REST API and zone sync, with state in
etcd — an embedded single-node etcd under --data-dir by default, or an
external cluster given with --etcd-endpoints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := global.Default()
			if err := load(cmd, &cfg, globalSettings); err != nil {
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
			return config.NameFlags(global.Run(cmd.Context(), cfg, log), flagsByKey(globalSettings))
		},
	}
	bindSettings(cmd, global.Default(), globalSettings)
	return cmd
}
