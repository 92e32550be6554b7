// Command atoll runs atoll's control planes, "atoll global" and
// "atoll zone", installs a pod's transparent proxy rules,
// "atoll transparent-proxy install" (the injected init container), and
// runs a pod's sidecar, "atoll sidecar" (the injected sidecar container).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/version"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		slog.Info("stopping; send the signal again to exit now", "signal", sig.String())
		cancel()
		<-signals
		os.Exit(1)
	}()

	root := &cobra.Command{
		Use:           "atoll",
		Short:         "atoll's multi-zone service-mesh control planes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(globalCommand(), zoneCommand(), transparentProxyCommand(), sidecarCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "atoll", version.String())
		},
	})
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "atoll:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 1, or the code an error asks for (the sidecar exits with its
// Envoy's status).
func exitCode(err error) int {
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) && coded.ExitCode() > 0 {
		return coded.ExitCode()
	}
	return 1
}
