package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/logging"
	"github.com/atoll-mesh/atoll/internal/sidecar"
)

// sidecarSettings are sidecar.Settings as the command's flags.
func sidecarSettings() ([]setting, func(flag string) string) {
	out := make([]setting, 0, len(sidecar.Settings))
	env := make(map[string]string, len(sidecar.Settings))
	for _, s := range sidecar.Settings {
		out = append(out, setting{flag: s.Flag, key: s.Key, usage: s.Usage})
		env[s.Flag] = s.Env
	}
	return out, func(flag string) string { return env[flag] }
}

func sidecarCommand() *cobra.Command {
	settings, env := sidecarSettings()
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run a pod's sidecar: the DNS proxy, the xDS relay and Envoy",
		Long: `Run the sidecar of a pod in the mesh (the atoll-sidecar container the
zone's webhook injects): a DNS proxy on 127.0.0.1:--dns-port sending .mesh
names to the zone's DNS and the rest to the pod's cluster DNS, an xDS relay
on <--run-dir>/xds.sock presenting the pod's ServiceAccount token to the
zone's xDS server, and Envoy bootstrapped to fetch its configuration through
the relay as node <mesh>.<the pod's Dataplane name>.

Each flag also reads the environment variable named in its help; the flag
wins. On SIGTERM everything keeps serving for --drain-duration, then Envoy
is stopped and the sidecar exits 0. If Envoy exits by itself the sidecar
exits with Envoy's status, so the kubelet restarts the container.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := sidecar.Default()
			if err := loadEnv(cmd, &cfg, settings, env); err != nil {
				return namingSetting(err)
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
			return sidecar.Run(cmd.Context(), cfg, log, os.Stdout, os.Stderr)
		},
	}
	bindSettingsEnv(cmd, sidecar.Default(), settings, env)
	cmd.AddCommand(sidecarProbeCommand())
	return cmd
}

// sidecarProbeCommand is the native sidecar's startup probe.
func sidecarProbeCommand() *cobra.Command {
	var port int
	var timeout time.Duration
	admin := sidecar.DefaultAdminPort
	var envErr error
	if v, ok := os.LookupEnv("ATOLL_ADMIN_PORT"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			envErr = fmt.Errorf("ATOLL_ADMIN_PORT %q is not a port: use 1-65535 (default %d)", v, admin)
		}
		admin = n
	}
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Exit 0 when the sidecar's Envoy is ready (the injected sidecar's startup probe)",
		Long: `Ask Envoy's admin interface on 127.0.0.1:--admin-port for /ready and exit
0 when it answers 200, once Envoy has its first configuration from the zone.
The webhook makes this the startup probe of the injected native sidecar, so
the pod's other containers start when their outbound traffic has a proxy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if envErr != nil && !cmd.Flags().Changed("admin-port") {
				return envErr
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return sidecar.Probe(ctx, port)
		},
	}
	cmd.Flags().IntVar(&port, "admin-port", admin, "Envoy's admin port on 127.0.0.1 (env ATOLL_ADMIN_PORT)")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Second, "give up after this long")
	return cmd
}

// namingSetting prefixes a configuration error about one setting (viper
// names it by its key) with its flag and variable.
func namingSetting(err error) error {
	for _, s := range sidecar.Settings {
		if strings.Contains(err.Error(), "'"+s.Key+"'") {
			return fmt.Errorf("%s: %w", sidecar.Name(s.Key), err)
		}
	}
	return err
}
