package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

func inspectCommand(c *client) *cobra.Command {
	var mesh, kind string
	cmd := &cobra.Command{
		Use:   "inspect dataplane NAME",
		Short: "Print the xDS configuration a Dataplane's proxy gets from its zone (JSON)",
		Long: `Print the configuration a Dataplane's proxy gets from the zone it is
registered with, as JSON by xDS type and resource name: listeners,
clusters and endpoints. Ask the zone's API (--api-url).

Examples:
  atollctl --api-url http://127.0.0.1:5691 inspect dataplane kong
  atollctl --api-url http://127.0.0.1:5691 inspect dataplane kong --kind proxyless`,
		Args: inspectArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.need(cmd.Context(), planeZone, "a proxy's configuration is served by the zone it connects to"); err != nil {
				return err
			}
			path := "/meshes/" + url.PathEscape(mesh) + "/dataplanes/" + url.PathEscape(args[1]) + "/xds/config"
			if kind != "" {
				if kind != "envoy" && kind != "proxyless" {
					return fmt.Errorf("--kind %q: use envoy or proxyless", kind)
				}
				path += "?kind=" + kind
			}
			return c.copyTo(cmd.Context(), cmd.OutOrStdout(), path)
		},
	}
	cmd.Flags().StringVar(&mesh, "mesh", "default", "the Dataplane's mesh")
	cmd.Flags().StringVar(&kind, "kind", "", "envoy or proxyless; default: the kind of the connected proxy, else envoy")
	return cmd
}
