// Command atollctl is the command line for atoll's REST APIs, global or zone.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/internal/version"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "atollctl:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	c := &client{}
	root := &cobra.Command{
		Use:           "atollctl",
		Short:         "Manage an atoll mesh through a global or zone control plane's API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("ATOLL_API_URL")
	if def == "" {
		def = "http://127.0.0.1:5681"
	}
	root.PersistentFlags().StringVar(&c.baseURL, "api-url", def, "URL of a control plane's REST API (env ATOLL_API_URL)")
	root.PersistentFlags().DurationVar(&c.timeout, "timeout", defaultTimeout, "timeout of each API request")
	c.token = os.Getenv("ATOLL_API_TOKEN")
	root.PersistentFlags().StringVar(&c.tokenFile, "api-token-file", os.Getenv("ATOLL_API_TOKEN_FILE"),
		"file holding the control plane's API token, needed from other machines (the api-token file in its data dir; env ATOLL_API_TOKEN_FILE, or the token itself in ATOLL_API_TOKEN)")
	c.envCAFile = os.Getenv("ATOLL_API_CA_FILE")
	root.PersistentFlags().StringVar(&c.caFile, "api-ca-file", "",
		"CA (PEM) that verifies an https:// API (a control plane with --api-tls serves it at /api-ca.pem); empty uses ATOLL_API_CA_FILE, else the system's roots")
	root.AddCommand(applyCommand(c), getCommand(c), deleteCommand(c), inspectCommand(c), bootstrapCommand(c),
		generateCommand(c), revokeCommand(c), rotateCommand(c), retireCommand(c), &cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, args []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "atollctl", version.String())
			},
		})
	root.AddCommand(statusCommand(c), acceptGlobalCommand(c))
	return root
}
