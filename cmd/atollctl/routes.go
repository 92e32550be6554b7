package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// A route table reads a proxy's xDS configuration (as the zone renders it
// at GET .../dataplanes/{name}/xds/config) from the proxy's side: each
// listener, or name a gRPC client resolves, the clusters it sends to, and
// each cluster's endpoints with their zone, priority, weight and health.

// xdsConfig is the rendered configuration: xDS type → resource name →
// resource, in protojson's form. Only what the table shows is read.
type xdsConfig struct {
	Listeners map[string]xdsListener `json:"envoy.config.listener.v3.Listener"`
	Clusters  map[string]xdsCluster  `json:"envoy.config.cluster.v3.Cluster"`
	Loads     map[string]xdsLoad     `json:"envoy.config.endpoint.v3.ClusterLoadAssignment"`
}

type xdsListener struct {
	Address      *xdsAddress `json:"address"`
	FilterChains []struct {
		Match *struct {
			ServerNames []string `json:"serverNames"`
		} `json:"filterChainMatch"`
		Filters []struct {
			TypedConfig xdsFilter `json:"typedConfig"`
		} `json:"filters"`
	} `json:"filterChains"`
	APIListener *struct {
		APIListener xdsFilter `json:"apiListener"`
	} `json:"apiListener"`
}

// xdsFilter is a TCP proxy or an HTTP connection manager.
type xdsFilter struct {
	Cluster          string               `json:"cluster"`
	WeightedClusters *xdsWeightedClusters `json:"weightedClusters"`
	RouteConfig      *struct {
		VirtualHosts []struct {
			Routes []struct {
				Route *struct {
					Cluster          string               `json:"cluster"`
					WeightedClusters *xdsWeightedClusters `json:"weightedClusters"`
				} `json:"route"`
			} `json:"routes"`
		} `json:"virtualHosts"`
	} `json:"routeConfig"`
	RDS *struct {
		RouteConfigName string `json:"routeConfigName"`
	} `json:"rds"`
}

type xdsWeightedClusters struct {
	Clusters []struct {
		Name string `json:"name"`
	} `json:"clusters"`
}

type xdsAddress struct {
	SocketAddress *struct {
		Address   string `json:"address"`
		PortValue uint32 `json:"portValue"`
	} `json:"socketAddress"`
}

func (a *xdsAddress) String() string {
	if a == nil || a.SocketAddress == nil {
		return ""
	}
	return net.JoinHostPort(a.SocketAddress.Address, strconv.FormatUint(uint64(a.SocketAddress.PortValue), 10))
}

type xdsCluster struct {
	// Type is absent for STATIC, protojson's default.
	Type           string   `json:"type"`
	LoadAssignment *xdsLoad `json:"loadAssignment"`
}

type xdsLoad struct {
	Endpoints []struct {
		Locality *struct {
			Zone string `json:"zone"`
		} `json:"locality"`
		Priority    uint32 `json:"priority"`
		LbEndpoints []struct {
			Endpoint *struct {
				Address *xdsAddress `json:"address"`
			} `json:"endpoint"`
			HealthStatus        string `json:"healthStatus"`
			LoadBalancingWeight uint32 `json:"loadBalancingWeight"`
			Metadata            *struct {
				FilterMetadata map[string]map[string]any `json:"filterMetadata"`
			} `json:"metadata"`
		} `json:"lbEndpoints"`
	} `json:"endpoints"`
}

// route is one row group of the table: where traffic enters and the
// cluster it goes to.
type route struct {
	from, cluster string
	endpoints     []endpointRow
}

type endpointRow struct {
	address, zone, priority, weight, health string
}

// routeTable reads a rendered configuration into routes: every listener's
// (sorted by name), then clusters no listener names.
func routeTable(data []byte) ([]route, error) {
	var cfg xdsConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("the API answered with something that is not an xDS configuration: %w", err)
	}
	var out []route
	used := map[string]bool{}
	for _, name := range sortedKeys(cfg.Listeners) {
		l := cfg.Listeners[name]
		from := name
		if l.APIListener != nil {
			from = "xds:///" + name
		} else if addr := l.Address.String(); addr != "" && !strings.Contains(name, addr) {
			from += " (" + addr + ")"
		}
		add := func(from string, clusters []string) {
			if len(clusters) == 0 {
				out = append(out, route{from: from, cluster: "-", endpoints: []endpointRow{{address: "no cluster", zone: "-", priority: "-", weight: "-", health: "-"}}})
			}
			for _, c := range clusters {
				used[c] = true
				out = append(out, route{from: from, cluster: c, endpoints: cfg.endpoints(c)})
			}
		}
		if l.APIListener != nil {
			add(from, l.APIListener.APIListener.clusters())
		}
		for _, fc := range l.FilterChains {
			chainFrom := from
			if fc.Match != nil && len(fc.Match.ServerNames) > 0 {
				chainFrom += " SNI " + strings.Join(fc.Match.ServerNames, ",")
			}
			var clusters []string
			for _, f := range fc.Filters {
				clusters = appendNew(clusters, f.TypedConfig.clusters()...)
			}
			add(chainFrom, clusters)
		}
	}
	for _, c := range sortedKeys(cfg.Clusters) {
		if !used[c] {
			out = append(out, route{from: "(no listener)", cluster: c, endpoints: cfg.endpoints(c)})
		}
	}
	return out, nil
}

// clusters are the clusters a filter sends to, in order, once each.
func (f xdsFilter) clusters() []string {
	var out []string
	if f.Cluster != "" {
		out = append(out, f.Cluster)
	}
	if f.WeightedClusters != nil {
		for _, c := range f.WeightedClusters.Clusters {
			out = appendNew(out, c.Name)
		}
	}
	if f.RouteConfig != nil {
		for _, vh := range f.RouteConfig.VirtualHosts {
			for _, r := range vh.Routes {
				if r.Route == nil {
					continue
				}
				out = appendNew(out, r.Route.Cluster)
				if r.Route.WeightedClusters != nil {
					for _, c := range r.Route.WeightedClusters.Clusters {
						out = appendNew(out, c.Name)
					}
				}
			}
		}
	}
	if f.RDS != nil {
		out = appendNew(out, "(routes of RDS "+f.RDS.RouteConfigName+")")
	}
	return out
}

func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if s != "" && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// endpoints are a cluster's endpoints: its load assignment's (EDS or
// inline), or a row that says why there are none.
func (cfg *xdsConfig) endpoints(name string) []endpointRow {
	none := func(why string) []endpointRow {
		return []endpointRow{{address: why, zone: "-", priority: "-", weight: "-", health: "-"}}
	}
	c, ok := cfg.Clusters[name]
	if !ok {
		return none("cluster not sent")
	}
	var load *xdsLoad
	switch c.Type {
	case "ORIGINAL_DST":
		return none("original destination (passthrough)")
	case "EDS":
		l, ok := cfg.Loads[name]
		if !ok {
			return none("no endpoints sent")
		}
		load = &l
	default:
		load = c.LoadAssignment
	}
	var out []endpointRow
	if load != nil {
		for _, loc := range load.Endpoints {
			zone := "-"
			if loc.Locality != nil && loc.Locality.Zone != "" {
				zone = loc.Locality.Zone
			}
			for _, e := range loc.LbEndpoints {
				row := endpointRow{zone: zone, priority: strconv.FormatUint(uint64(loc.Priority), 10), weight: "1", health: "healthy"}
				if e.Endpoint != nil {
					row.address = e.Endpoint.Address.String()
				}
				if e.Metadata != nil && e.Metadata.FilterMetadata["envoy.transport_socket_match"]["atoll.io/ingress"] == true {
					row.address += " (ingress)"
				}
				if e.LoadBalancingWeight > 0 {
					row.weight = strconv.FormatUint(uint64(e.LoadBalancingWeight), 10)
				}
				if h := e.HealthStatus; h != "" && h != "UNKNOWN" {
					row.health = strings.ToLower(h)
				}
				out = append(out, row)
			}
		}
	}
	if len(out) == 0 {
		return none("no endpoints: no ready instance anywhere")
	}
	return out
}

// printRoutes writes routes as a table; header names the first column
// (LISTENER, or NAME for a gRPC client's xds:/// names). local is the
// zone of the proxy, marked in the ZONE column.
func printRoutes(w io.Writer, routes []route, local string) error {
	if len(routes) == 0 {
		_, err := fmt.Fprintln(w, "No listeners or clusters: the proxy gets no configuration.")
		return err
	}
	first := "LISTENER"
	if strings.HasPrefix(routes[0].from, "xds:///") {
		first = "NAME"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tCLUSTER\tENDPOINT\tZONE\tPRIORITY\tWEIGHT\tHEALTH\n", first)
	prevFrom := ""
	for _, r := range routes {
		from := r.from
		if from == prevFrom {
			from = ""
		}
		prevFrom = r.from
		for i, e := range r.endpoints {
			zone := e.zone
			if zone == local && local != "" {
				zone += " (local)"
			}
			cluster := r.cluster
			if i > 0 {
				from, cluster = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", from, cluster, e.address, zone, e.priority, e.weight, e.health)
		}
	}
	return tw.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
