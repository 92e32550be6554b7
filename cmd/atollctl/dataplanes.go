package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// proxyItem is one entry of a zone's GET /proxies.
type proxyItem struct {
	Node      string            `json:"node"`
	Mesh      string            `json:"mesh"`
	Dataplane string            `json:"dataplane"`
	Kind      string            `json:"kind"`
	InSync    bool              `json:"inSync"`
	Nacked    map[string]string `json:"nacked"`
}

// state is a proxy's sync state in a few words.
func (p proxyItem) state() string {
	if len(p.Nacked) > 0 {
		var types []string
		for t := range p.Nacked {
			types = append(types, t[strings.LastIndexByte(t, '.')+1:])
		}
		sort.Strings(types)
		return "refused " + strings.Join(types, ", ")
	}
	if p.InSync {
		return "in sync"
	}
	return "updating"
}

// printDataplanes writes Dataplanes as a table; asked of a zone, with
// whether each one's proxy is connected to it (GET /proxies).
func (c *client) printDataplanes(ctx context.Context, w io.Writer, items []*resource.Resource) error {
	id, err := c.identify(ctx)
	if err != nil {
		return err
	}
	if id.Kind != planeZone || len(items) == 0 {
		return dataplanesTable(w, items, nil)
	}
	data, _, err := c.do(ctx, http.MethodGet, "/proxies", nil)
	if err != nil {
		return err
	}
	var list struct {
		Items []proxyItem `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the API answered with something that is not a proxy list: %w", err)
	}
	proxies := map[string]proxyItem{}
	for _, p := range list.Items {
		if p.Dataplane != "" {
			proxies[p.Mesh+"/"+p.Dataplane] = p
		}
	}
	return dataplanesTable(w, items, proxies)
}

// dataplanesTable writes Dataplanes; with proxies (a zone's, by
// mesh/name), a PROXY column says whether each one's proxy is connected,
// of which kind, and its sync state.
func dataplanesTable(w io.Writer, items []*resource.Resource, proxies map[string]proxyItem) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No dataplanes found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := "MESH\tNAME\tZONE\tADDRESS\tKIND\tSERVICES\tAGE"
	if proxies != nil {
		header += "\tPROXY"
	}
	fmt.Fprintln(tw, header)
	now := clock()
	for _, r := range items {
		dp := r.Spec.(*v1alpha1.Dataplane)
		kind, services := dataplaneSummary(dp)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Meta.Mesh, r.Meta.Name, orDash(r.Meta.Labels[resource.ZoneLabel]),
			dp.GetNetworking().GetAddress(), kind, services, age(now, r.Meta.CreationTime))
		if proxies != nil {
			proxy := "not connected"
			if p, ok := proxies[r.Meta.Mesh+"/"+r.Meta.Name]; ok {
				proxy = "connected, " + p.Kind + ", " + p.state()
			}
			fmt.Fprintf(tw, "\t%s", proxy)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
