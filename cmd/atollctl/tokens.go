package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Zone tokens are issued, revoked and signed by the global; these commands
// talk to the global's API.

func generateCommand(c *client) *cobra.Command {
	cmd := &cobra.Command{Use: "generate", Short: "Generate credentials (zone tokens) on the global", Args: subcommandArgs, RunE: runGroup}
	var zone string
	var validFor time.Duration
	zt := &cobra.Command{
		Use:   "zone-token --zone NAME [--valid-for DURATION]",
		Short: "Print a new token for a zone; the zone presents it with --global-token-file",
		Example: `  atollctl --api-url http://global:5681 generate zone-token --zone zone-1 > zone-1.token
  atoll zone --zone zone-1 --global-address grpcs://global:5685 --global-token-file zone-1.token ...`,
		Args: noArgs("name the zone with --zone: atollctl generate zone-token --zone ZONE [--valid-for DURATION]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if zone == "" {
				return errors.New("--zone is required: the name of the zone the token admits")
			}
			if err := c.need(cmd.Context(), planeGlobal, "zone tokens are issued by the global"); err != nil {
				return err
			}
			body, err := json.Marshal(map[string]string{"validFor": validFor.String()})
			if err != nil {
				return err
			}
			data, _, err := c.do(cmd.Context(), http.MethodPost, "/zones/"+url.PathEscape(zone)+"/tokens", body)
			if err != nil {
				return err
			}
			var out struct {
				Token string `json:"token"`
			}
			if err := json.Unmarshal(data, &out); err != nil || out.Token == "" {
				return fmt.Errorf("the API answered without a token (is --api-url the global's?): %s", data)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return err
		},
	}
	zt.Flags().StringVar(&zone, "zone", "", "the zone the token admits")
	zt.Flags().DurationVar(&validFor, "valid-for", 365*24*time.Hour, "how long the token is valid (1m to 87600h)")
	cmd.AddCommand(zt)
	return cmd
}

func revokeCommand(c *client) *cobra.Command {
	cmd := &cobra.Command{Use: "revoke", Short: "Revoke credentials (zone tokens) on the global", Args: subcommandArgs, RunE: runGroup}
	var zone string
	zt := &cobra.Command{
		Use:   "zone-token --zone NAME",
		Short: "Revoke every token issued for a zone until now and cut its live connections",
		Long: `Revoke every token issued for the zone until now. Every global replica cuts
the zone's connections made with them at once; the zone reconnects only with a
token generated afterwards.`,
		Args: noArgs("name the zone with --zone: atollctl revoke zone-token --zone ZONE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if zone == "" {
				return errors.New("--zone is required: the zone whose tokens to revoke")
			}
			if err := c.need(cmd.Context(), planeGlobal, "zone tokens are revoked on the global"); err != nil {
				return err
			}
			data, _, err := c.do(cmd.Context(), http.MethodDelete, "/zones/"+url.PathEscape(zone)+"/tokens", nil)
			if err != nil {
				return err
			}
			var out struct {
				StreamsCut int `json:"streamsCut"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("the API answered with something unexpected: %s", data)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "tokens of zone %s issued until now are revoked; connections cut on the replica asked: %d (other replicas cut theirs)\n", zone, out.StreamsCut)
			return err
		},
	}
	zt.Flags().StringVar(&zone, "zone", "", "the zone whose tokens to revoke")
	cmd.AddCommand(zt)
	return cmd
}

func rotateCommand(c *client) *cobra.Command {
	cmd := &cobra.Command{Use: "rotate", Short: "Rotate keys on the global", Args: subcommandArgs, RunE: runGroup}
	cmd.AddCommand(&cobra.Command{
		Use:   "zone-token-key",
		Short: "Create a new zone token signing key; tokens signed by older keys stay valid until those are retired",
		Args:  noArgs("atollctl rotate zone-token-key takes no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.need(cmd.Context(), planeGlobal, "zone token keys are kept by the global"); err != nil {
				return err
			}
			data, _, err := c.do(cmd.Context(), http.MethodPost, "/zone-token-keys", nil)
			if err != nil {
				return err
			}
			var k keyInfo
			if err := json.Unmarshal(data, &k); err != nil {
				return fmt.Errorf("the API answered with something unexpected: %s", data)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "key %s signs new zone tokens from now on; retire older keys with atollctl retire zone-token-key ID once every zone has a new token\n", k.ID)
			return err
		},
	})
	return cmd
}

func retireCommand(c *client) *cobra.Command {
	cmd := &cobra.Command{Use: "retire", Short: "Retire keys on the global", Args: subcommandArgs, RunE: runGroup}
	cmd.AddCommand(&cobra.Command{
		Use:   "zone-token-key ID",
		Short: "Retire a zone token signing key: tokens it signed stop working, connections made with them are cut",
		Args:  oneArg("the ID of the key to retire", "atollctl retire zone-token-key ID (atollctl get zone-token-keys lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.need(cmd.Context(), planeGlobal, "zone token keys are kept by the global"); err != nil {
				return err
			}
			if _, _, err := c.do(cmd.Context(), http.MethodDelete, "/zone-token-keys/"+url.PathEscape(args[0]), nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "key %s retired\n", args[0])
			return err
		},
	})
	return cmd
}

type keyInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Signing bool      `json:"signing"`
}

func zoneTokenKeysTable(w io.Writer, data []byte) error {
	var list struct {
		Items []keyInfo `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the API answered with something that is not a key list: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tUSE")
	for _, k := range list.Items {
		use := "verifies"
		if k.Signing {
			use = "signs and verifies"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.Created.Format(time.RFC3339), use)
	}
	return tw.Flush()
}
