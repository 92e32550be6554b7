// Command atollctl is the command line for atoll's REST APIs, global or zone.
// It asks each API what it is (GET /identity) before a command, answers a
// command meant for the other plane with what to run instead, and keeps
// named APIs as contexts in the user's config directory (contexts.go).
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
	var flags apiFlags
	pf := root.PersistentFlags()
	pf.StringVar(&flags.url, "api-url", "", "URL of a control plane's REST API; without a scheme, http:// (default: ATOLL_API_URL, else the current context's, else "+defaultAPIURL+")")
	pf.StringVar(&flags.context, "context", "", "use this context's API (atollctl config get-contexts) instead of ATOLL_API_URL or the current context")
	pf.DurationVar(&c.timeout, "timeout", defaultTimeout, "timeout of each API request")
	pf.StringVar(&flags.tokenFile, "api-token-file", "",
		"file holding the control plane's API token, needed from other machines (the api-token file in its data dir); default: ATOLL_API_TOKEN_FILE, else the token itself in ATOLL_API_TOKEN, else the context's")
	pf.StringVar(&flags.caFile, "api-ca-file", "",
		"CA (PEM) that verifies an https:// API (a control plane with --api-tls serves it at /api-ca.pem); default: ATOLL_API_CA_FILE, else the context's, else the system's roots")
	// The API settings are resolved at the first request: commands that
	// make none (version, config) work whatever the config file holds.
	c.resolve = func() error {
		if pf.Changed("api-url") && flags.url == "" {
			return fmt.Errorf("--api-url is empty: give the API's URL, e.g. %s", defaultAPIURL)
		}
		t, err := resolveTarget(flags, os.Getenv)
		if err != nil {
			return err
		}
		if t.hint != "" {
			fmt.Fprintln(root.ErrOrStderr(), "atollctl:", t.hint)
		}
		c.baseURL, c.urlFrom, c.context = t.url, t.urlFrom, t.context
		c.caFile, c.caFrom, c.envCAFile = t.caFile, t.caFrom, t.envCAFile
		c.tokenFile, c.tokenFrom, c.token = t.tokenFile, t.tokenFrom, t.token
		return nil
	}
	root.AddCommand(applyCommand(c), getCommand(c), deleteCommand(c), inspectCommand(c), bootstrapCommand(c),
		generateCommand(c), revokeCommand(c), rotateCommand(c), retireCommand(c), &cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, args []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "atollctl", version.String())
			},
		})
	root.AddCommand(statusCommand(c), acceptGlobalCommand(c), configCommand(&flags, os.Getenv))
	return root
}
