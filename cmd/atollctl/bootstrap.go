package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func bootstrapCommand(c *client) *cobra.Command {
	var mesh, kind, xds, caFile, tokenFile string
	cmd := &cobra.Command{
		Use:   "bootstrap (dataplane NAME | ingress ZONE)",
		Short: "Print the bootstrap a proxy starts with: its zone's xDS server and its node.id (JSON)",
		Long: `Print the bootstrap configuration a proxy needs to fetch its configuration
from the zone it is registered with: for Envoy (a Dataplane's sidecar, or
the zone's ingress) or for grpc-go's xDS client (GRPC_XDS_BOOTSTRAP).
Ask the zone's API (--api-url). The xDS server is named as the zone
listens (--xds-addr), with an unspecified host replaced by the host of
--api-url; --xds names it otherwise, as the proxy reaches it.

Examples:
  atollctl --api-url http://127.0.0.1:5691 bootstrap dataplane kong > envoy.json
  envoy -c envoy.json
  atollctl --api-url http://127.0.0.1:5691 bootstrap dataplane kong --kind proxyless > xds.json
  GRPC_XDS_BOOTSTRAP=xds.json ./my-grpc-client   # dials xds:///backend.mesh:9001
  atollctl --api-url http://127.0.0.1:5691 bootstrap ingress zone-1 --xds 10.0.0.5:5678
  # a zone serving xDS over TLS (--xds-tls): gRPC clients read its CA from a file
  atollctl --api-url http://127.0.0.1:5691 bootstrap dataplane kong --kind proxyless --ca-file /etc/atoll/xds-ca.pem > xds.json
  # a pod's Dataplane in a Kubernetes zone (xDS over TLS): the client presents
  # the pod's projected ServiceAccount token (audience atoll-xds) from a file
  atollctl --api-url http://127.0.0.1:5691 bootstrap dataplane kong-7d9-kong-abc --kind proxyless \
    --ca-file /etc/atoll/xds-ca.pem --token-file /var/run/secrets/atoll/token > xds.json
  GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true GRPC_XDS_BOOTSTRAP=xds.json ./my-grpc-client`,
		Args: bootstrapArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Asked before the first request, once the flags are checked.
			zone := func() error {
				return c.need(cmd.Context(), planeZone, "bootstraps are served by the zone a proxy connects to")
			}
			q := url.Values{}
			var path string
			if args[0] == "ingress" || args[0] == "zoneingress" {
				if kind != "" && kind != "envoy" {
					return fmt.Errorf("--kind %q: a zone's ingress is an Envoy", kind)
				}
				path = "/zoneingresses/" + url.PathEscape(args[1]) + "/bootstrap"
			} else {
				switch kind {
				case "", "envoy", "proxyless":
				default:
					return fmt.Errorf("--kind %q: use envoy or proxyless", kind)
				}
				if kind != "" {
					q.Set("kind", kind)
				}
				if tokenFile != "" {
					if kind != "proxyless" {
						return fmt.Errorf("--token-file is for --kind proxyless: a pod's Envoy gets its token through the injected sidecar")
					}
					if !filepath.IsAbs(tokenFile) {
						return fmt.Errorf("--token-file %q: give the absolute path of the token as the client sees it (in the pod)", tokenFile)
					}
					q.Set("token-file", tokenFile)
				}
				if caFile != "" {
					if kind != "proxyless" {
						return fmt.Errorf("--ca-file is for --kind proxyless: an Envoy bootstrap carries the CA itself")
					}
					abs, err := filepath.Abs(caFile)
					if err != nil {
						return err
					}
					if err := zone(); err != nil {
						return err
					}
					// The zone's xDS CA, where the bootstrap says the client finds it.
					ca, _, err := c.do(cmd.Context(), http.MethodGet, "/xds-ca.pem", nil)
					if err != nil {
						return err
					}
					if err := os.WriteFile(abs, ca, 0o644); err != nil {
						return fmt.Errorf("--ca-file: %w", err)
					}
					q.Set("ca-file", abs)
				}
				path = "/meshes/" + url.PathEscape(mesh) + "/dataplanes/" + url.PathEscape(args[1]) + "/bootstrap"
			}
			if xds != "" {
				q.Set("xds", xds)
			}
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			if err := zone(); err != nil {
				return err
			}
			return c.copyTo(cmd.Context(), cmd.OutOrStdout(), path)
		},
	}
	cmd.Flags().StringVar(&mesh, "mesh", "default", "the Dataplane's mesh")
	cmd.Flags().StringVar(&kind, "kind", "", "envoy (default) or proxyless (grpc-go's xDS client)")
	cmd.Flags().StringVar(&xds, "xds", "", "the zone's xDS server as the proxy reaches it (HOST:PORT); default: as the zone listens")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "with --kind proxyless and a pod's Dataplane (Kubernetes zone, xDS over TLS): the absolute path of the pod's projected ServiceAccount token (audience atoll-xds) the client presents; grpc-go needs GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true to send it")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "with --kind proxyless and a zone serving xDS over TLS: write the zone's xDS CA to this file, which the bootstrap names")
	return cmd
}
