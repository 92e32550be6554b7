package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// configCommand manages contexts. set-context reads the root's --api-url,
// --api-ca-file and --api-token-file flags (only the flags: the
// environment is not a context's).
func configCommand(flags *apiFlags, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage contexts: named control plane APIs, so that --api-url need not be typed",
		Long: `A context names a control plane's API URL, with the CA and token files that
go with it. Commands use the current context unless --api-url, ATOLL_API_URL or
--context name another API. Contexts are kept in atoll/config.yaml in the
user's config directory (mode 0600), or in the file ATOLLCTL_CONFIG names.`,
		Example: `  atollctl config set-context global --api-url http://127.0.0.1:5681
  atollctl config set-context zone-1 --api-url http://127.0.0.1:5691
  atollctl config use-context zone-1
  atollctl get services                 # asks zone-1
  atollctl --context global get zones   # one command against another context`,
		Args: subcommandArgs,
		RunE: runGroup,
	}
	load := func() (*ctlConfig, string, error) { return readConfig(getenv) }

	setContext := &cobra.Command{
		Use:   "set-context NAME --api-url URL [--api-ca-file FILE] [--api-token-file FILE]",
		Short: "Create a context, or change the settings given of an existing one",
		Example: `  atollctl config set-context zone-1 --api-url http://127.0.0.1:5691
  atollctl config set-context prod --api-url https://global.example:5681 --api-ca-file api-ca.pem --api-token-file api-token`,
		Args: nameArg("set-context", "atollctl config set-context zone-1 --api-url http://127.0.0.1:5691"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkContextName(name); err != nil {
				return err
			}
			if flags.context != "" {
				return errors.New("--context selects a context for one command: to change a context, name it as the argument of set-context")
			}
			cfg, path, err := load()
			if err != nil {
				return err
			}
			pf := cmd.Flags()
			ctx, verb := cfg.find(name), "modified"
			if ctx == nil {
				if !pf.Changed("api-url") {
					return fmt.Errorf("context %q is new: give its API with --api-url, e.g. atollctl config set-context %s --api-url http://127.0.0.1:5691", name, name)
				}
				cfg.Contexts = append(cfg.Contexts, apiContext{Name: name})
				ctx, verb = &cfg.Contexts[len(cfg.Contexts)-1], "created"
			}
			if pf.Changed("api-url") {
				u, hint, err := normalizeURL(flags.url, "--api-url")
				if err != nil {
					return err
				}
				if hint != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "atollctl:", hint)
				}
				ctx.APIURL = u
			}
			if pf.Changed("api-ca-file") {
				if ctx.APICAFile, err = checkCAFile(flags.caFile); err != nil {
					return err
				}
			}
			if pf.Changed("api-token-file") {
				if ctx.APITokenFile, err = checkTokenFile(flags.tokenFile); err != nil {
					return err
				}
			}
			if ctx.APICAFile != "" && !strings.HasPrefix(ctx.APIURL, "https://") {
				return fmt.Errorf("--api-ca-file verifies an API served over TLS, but context %q has the API URL %s: give an https:// --api-url, or drop the CA with --api-ca-file \"\"", name, ctx.APIURL)
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "context %q %s (%s) in %s\n", name, verb, ctx.APIURL, path)
			if cfg.CurrentContext != name {
				fmt.Fprintf(out, "use it with: atollctl config use-context %s (or atollctl --context %s COMMAND)\n", name, name)
			}
			return nil
		},
	}

	useContext := &cobra.Command{
		Use:     "use-context NAME",
		Short:   "Make a context the current one: commands then use its API",
		Example: `  atollctl config use-context zone-1`,
		Args:    nameArg("use-context", "atollctl config use-context zone-1"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := load()
			if err != nil {
				return err
			}
			ctx := cfg.find(args[0])
			if ctx == nil {
				return noContext(args[0], cfg, path)
			}
			cfg.CurrentContext = ctx.Name
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "switched to context %q (%s)\n", ctx.Name, ctx.APIURL)
			if url := getenv("ATOLL_API_URL"); url != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "atollctl: ATOLL_API_URL=%s is set and comes before the current context: unset it to use %q\n", url, ctx.Name)
			}
			return nil
		},
	}

	getContexts := &cobra.Command{
		Use:   "get-contexts",
		Short: "List the contexts; * marks the current one",
		Args:  noArgs("atollctl config get-contexts takes no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := load()
			if err != nil {
				return err
			}
			if len(cfg.Contexts) == 0 {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "No contexts in %s: create one with atollctl config set-context NAME --api-url URL\n", path)
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tAPI URL\tCA FILE\tTOKEN FILE")
			for _, c := range cfg.Contexts {
				mark := ""
				if c.Name == cfg.CurrentContext {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, c.Name, c.APIURL, orDash(c.APICAFile), orDash(c.APITokenFile))
			}
			return tw.Flush()
		},
	}

	currentContext := &cobra.Command{
		Use:   "current-context",
		Short: "Print the name of the current context",
		Args:  noArgs("atollctl config current-context takes no arguments; switch with atollctl config use-context NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := load()
			if err != nil {
				return err
			}
			if cfg.CurrentContext == "" {
				return fmt.Errorf("no current context in %s: choose one with atollctl config use-context NAME (contexts: %s)", path, listOrNone(cfg.names()))
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), cfg.CurrentContext)
			return err
		},
	}

	deleteContext := &cobra.Command{
		Use:     "delete-context NAME",
		Short:   "Delete a context (the current one too: commands then use the default API)",
		Example: `  atollctl config delete-context zone-1`,
		Args:    nameArg("delete-context", "atollctl config delete-context zone-1"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := load()
			if err != nil {
				return err
			}
			if cfg.find(args[0]) == nil {
				return noContext(args[0], cfg, path)
			}
			kept := cfg.Contexts[:0]
			for _, c := range cfg.Contexts {
				if c.Name != args[0] {
					kept = append(kept, c)
				}
			}
			cfg.Contexts = kept
			wasCurrent := cfg.CurrentContext == args[0]
			if wasCurrent {
				cfg.CurrentContext = ""
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q deleted\n", args[0])
			if wasCurrent {
				fmt.Fprintf(cmd.OutOrStdout(), "it was the current context: commands now use %s unless --api-url or ATOLL_API_URL says otherwise; choose another with atollctl config use-context NAME\n", defaultAPIURL)
			}
			return nil
		},
	}
	cmd.AddCommand(setContext, useContext, getContexts, currentContext, deleteContext)
	return cmd
}

// nameArg requires one argument, the context's name.
func nameArg(sub, example string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("config %s takes one argument, the context's name (got %d): e.g. %s", sub, len(args), example)
		}
		return nil
	}
}

func noContext(name string, cfg *ctlConfig, path string) error {
	return fmt.Errorf("no context %q in %s: use one of: %s, or create it with atollctl config set-context %s --api-url URL", name, path, listOrNone(cfg.names()), name)
}

// checkCAFile returns the absolute path of a CA file that holds a PEM
// certificate; "" clears the setting.
func checkCAFile(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("--api-ca-file: %w", err)
	}
	pem, err := os.ReadFile(abs)
	if err != nil {
		return "", fmt.Errorf("--api-ca-file: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return "", fmt.Errorf("--api-ca-file: %s holds no PEM certificate (a control plane with --api-tls serves its CA at /api-ca.pem)", abs)
	}
	return abs, nil
}

// checkTokenFile returns the absolute path of a readable, non-empty token
// file; "" clears the setting. The token itself is not stored.
func checkTokenFile(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return "", fmt.Errorf("--api-token-file: %s is empty: give the control plane's api-token file (in its data dir)", abs)
	}
	return abs, nil
}
