package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// inspectUsage is inspect's command line.
const inspectUsage = "atollctl inspect dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [-o table|json], or atollctl inspect ingress ZONE [-o table|json]"

func inspectCommand(c *client) *cobra.Command {
	var mesh, kind, output string
	cmd := &cobra.Command{
		Use:   "inspect dataplane NAME | inspect ingress ZONE",
		Short: "Show a proxy: its kind, connection, sync state and route table",
		Long: `Show what a Dataplane's proxy, or the zone's ingress, gets from the zone:
the kind of proxy (Envoy sidecar, delegated gateway, proxyless gRPC,
ingress), whether it is connected, which configuration it ACKed or
refused, and a route table: each listener (or name a gRPC client
resolves, xds:///NAME) → cluster → endpoints with their zone, priority
(0 first: local instances come before other zones'), weight and health.
-o json prints the configuration itself, by xDS type and resource name
(the ingress's private key left out). Ask the zone's API (--api-url).

Examples:
  atollctl --api-url http://127.0.0.1:5691 inspect dataplane kong
  atollctl --api-url http://127.0.0.1:5691 inspect dataplane kong -o json
  atollctl --api-url http://127.0.0.1:5691 inspect dataplane kong --kind proxyless
  atollctl --api-url http://127.0.0.1:5691 inspect ingress zone-1`,
		Args: inspectArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			if kind != "" && kind != "envoy" && kind != "proxyless" {
				return fmt.Errorf("--kind %q: use envoy or proxyless", kind)
			}
			ingress := isIngressArg(args[0])
			if ingress && kind != "" {
				return fmt.Errorf("--kind %s: a zone's ingress is always an Envoy; --kind is for a Dataplane's proxy", kind)
			}
			if err := c.need(cmd.Context(), planeZone, "a proxy's configuration is served by the zone it connects to"); err != nil {
				return err
			}
			base := "/meshes/" + url.PathEscape(mesh) + "/dataplanes/" + url.PathEscape(args[1])
			if ingress {
				base = "/zoneingresses/" + url.PathEscape(args[1])
			}
			path := base + "/xds/config"
			if kind != "" {
				path += "?kind=" + kind
			}
			if output == "json" {
				return c.copyTo(cmd.Context(), cmd.OutOrStdout(), path)
			}
			config, _, err := c.do(cmd.Context(), http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			in := inspection{Mesh: mesh, Name: args[1], Kind: kind, Config: config, Ingress: ingress}
			if ingress {
				in.Zone = args[1]
				in.Summary = c.summaryOf(cmd.Context(), args[1])
			} else {
				d, err := resource.Types.Get(resource.DataplaneType)
				if err != nil {
					return err
				}
				dp, err := c.get(cmd.Context(), d, mesh, args[1])
				if err != nil {
					return err
				}
				in.Zone = dp.Meta.Labels[resource.ZoneLabel]
				in.Gateway = dp.Spec.(*v1alpha1.Dataplane).GetNetworking().GetGateway() != nil
			}
			data, status, err := c.do(cmd.Context(), http.MethodGet, base+"/xds", nil)
			switch {
			case status == http.StatusNotFound:
				// Not connected: in.Status stays nil.
			case err != nil:
				return err
			default:
				in.Status = &proxyStatus{}
				if err := json.Unmarshal(data, in.Status); err != nil {
					return fmt.Errorf("the API answered with something that is not a proxy's status: %w", err)
				}
			}
			return printInspection(cmd.OutOrStdout(), in, clock())
		},
	}
	cmd.Flags().StringVar(&mesh, "mesh", "default", "the Dataplane's mesh")
	cmd.Flags().StringVar(&kind, "kind", "", "envoy or proxyless; default: the kind of the connected proxy, else envoy")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table (header and route table) or json (the configuration)")
	return cmd
}

func isIngressArg(arg string) bool {
	return arg == "ingress" || arg == "zoneingress" || arg == "zoneingresses"
}

// clock is the time ages are measured from (tests fix it).
var clock = time.Now

// proxyStatus is what GET .../dataplanes/{name}/xds answers for a
// connected proxy.
type proxyStatus struct {
	Node      string            `json:"node"`
	Kind      string            `json:"kind"`
	Streams   int               `json:"streams"`
	Connected time.Time         `json:"connected"`
	InSync    bool              `json:"inSync"`
	Sent      map[string]string `json:"sent"`
	Acked     map[string]string `json:"acked"`
	Nacked    map[string]string `json:"nacked"`
}

// inspection is what inspect dataplane shows.
type inspection struct {
	Mesh, Name, Zone string
	// Gateway: the Dataplane is a delegated gateway (no inbounds).
	Gateway bool
	// Ingress: the proxy is zone Zone's ingress (Name is the zone).
	Ingress bool
	// Kind is --kind ("" when not given).
	Kind string
	// Status is the connected proxy's, nil when none is connected.
	Status *proxyStatus
	// Config is the rendered configuration.
	Config []byte
	// Summary is what an ingress's zone offers other zones, gathered
	// from its ZoneIngresses (nil: not known).
	Summary *zoneSummary
}

// proxyKind names the proxy for a reader: by the connected proxy's kind,
// else the kind asked for (envoy by default).
func (in inspection) proxyKind() string {
	kind := in.Kind
	if kind == "" && in.Status != nil {
		kind = in.Status.Kind
	}
	switch {
	case in.Ingress:
		return "ingress (Envoy): other zones' proxies reach this zone's services through it, by SNI"
	case kind == "proxyless" || kind == "proxyless-grpc":
		if in.Gateway {
			return "proxyless gRPC (a gateway Dataplane)"
		}
		return "proxyless gRPC"
	case in.Gateway:
		return "delegated gateway (Envoy)"
	}
	return "Envoy sidecar"
}

func printInspection(w io.Writer, in inspection, now time.Time) error {
	routes, err := routeTable(in.Config)
	if err != nil {
		return err
	}
	zone := in.Zone
	if zone == "" {
		zone = "-"
	}
	if in.Ingress {
		fmt.Fprintf(w, "Ingress:    zone %s\n", in.Zone)
		if s := in.Summary; s != nil {
			fmt.Fprintf(w, "Offers:     %d services, %d ready instances (in %d ZoneIngresses)\n", len(s.services), s.instances, s.records)
		}
	} else {
		fmt.Fprintf(w, "Dataplane:  %s (mesh %s, zone %s)\n", in.Name, in.Mesh, zone)
	}
	fmt.Fprintf(w, "Proxy:      %s\n", in.proxyKind())
	st := in.Status
	if st == nil {
		fmt.Fprintln(w, "Connection: not connected to this zone: the routes below are what the proxy gets once it connects")
		if in.Ingress {
			fmt.Fprintf(w, "            (atollctl bootstrap ingress %s prints its Envoy's bootstrap)\n", in.Zone)
		}
	} else {
		streams := "1 stream"
		if st.Streams != 1 {
			streams = fmt.Sprintf("%d streams", st.Streams)
		}
		fmt.Fprintf(w, "Connection: connected for %s (node %s, %s)\n", age(now, st.Connected), st.Node, streams)
		if in.Kind != "" && !strings.HasPrefix(st.Kind, in.Kind) {
			would := "an Envoy"
			if in.Kind == "proxyless" {
				would = "a proxyless gRPC client"
			}
			fmt.Fprintf(w, "            the connected proxy is %s; the routes below are what %s would get (--kind %s)\n", st.Kind, would, in.Kind)
		}
		printSync(w, st)
	}
	fmt.Fprintln(w)
	if in.Ingress && len(routes) == 0 {
		_, err := fmt.Fprintf(w, "No listeners: zone %s has no ready instance of any service to offer other zones.\n", in.Zone)
		return err
	}
	return printRoutes(w, routes, in.Zone)
}

// printSync writes the proxy's sync state: in sync, waiting for ACKs, or
// refusing configuration (with the proxy's message), then each type's
// versions.
func printSync(w io.Writer, st *proxyStatus) {
	types := map[string]bool{}
	for _, m := range []map[string]string{st.Sent, st.Acked, st.Nacked} {
		for t := range m {
			types[t] = true
		}
	}
	var nacked, waiting []string
	for _, t := range sortedKeys(types) {
		if _, ok := st.Nacked[t]; ok {
			nacked = append(nacked, t)
		} else if st.Sent[t] != st.Acked[t] {
			waiting = append(waiting, t)
		}
	}
	switch {
	case len(nacked) > 0:
		fmt.Fprintf(w, "Sync:       REFUSED: the proxy NACKed %s; it keeps its last ACKed configuration, and the zone sends the next change, not this one again\n", strings.Join(nacked, ", "))
	case len(types) == 0:
		fmt.Fprintln(w, "Sync:       nothing sent yet")
	case len(waiting) > 0:
		fmt.Fprintf(w, "Sync:       updating: waiting for the proxy to ACK %s\n", strings.Join(waiting, ", "))
	default:
		fmt.Fprintln(w, "Sync:       in sync: the proxy ACKed the latest version of every type")
	}
	for _, t := range sortedKeys(types) {
		sent, acked := st.Sent[t], st.Acked[t]
		line := "ACKed " + orNone(acked)
		switch msg, refused := st.Nacked[t]; {
		case refused:
			line = fmt.Sprintf("NACKed %s: %s (last ACKed: %s)", orNone(sent), msg, orNone(acked))
		case sent != acked:
			line = fmt.Sprintf("sent %s, ACKed %s", orNone(sent), orNone(acked))
		default:
			line += " (latest)"
		}
		fmt.Fprintf(w, "            %-22s %s\n", t, line)
	}
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
