package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// Views are API answers that are not resources: zones with their status
// (global) and the services a zone can reach.

type zoneView struct {
	Name       string     `json:"name"`
	Enabled    bool       `json:"enabled"`
	Online     bool       `json:"online"`
	LastSeen   *time.Time `json:"lastSeen"`
	Dataplanes int        `json:"dataplanes"`
	SyncLagMs  int64      `json:"syncLagMs"`
}

type serviceView struct {
	Name      string            `json:"name"`
	Zones     map[string]uint32 `json:"zones"`
	Local     bool              `json:"local"`
	Instances uint32            `json:"instances"`
}

// getView fetches path and prints it as a table (with printTable) or as
// JSON/YAML of the API's answer.
func (c *client) getView(ctx context.Context, w io.Writer, path, output string, printTable func(io.Writer, []byte) error) error {
	data, _, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	switch output {
	case "json":
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, data, "", "  "); err != nil {
			return err
		}
		_, err := w.Write(pretty.Bytes())
		return err
	case "yaml":
		y, err := resource.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	return printTable(w, data)
}

func zonesTable(w io.Writer, data []byte) error {
	var items []zoneView
	var list struct {
		Items []zoneView `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err == nil && list.Items != nil {
		items = list.Items
	} else {
		var one zoneView
		if err := json.Unmarshal(data, &one); err != nil {
			return fmt.Errorf("the API answered with something that is not a zone: %w", err)
		}
		items = []zoneView{one}
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, "No zones found: a zone appears when it first connects.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "ZONE\tENABLED\tONLINE\tLAST SEEN\tDATAPLANES\tSYNC LAG")
	now := time.Now()
	for _, z := range items {
		seen := "never"
		if z.LastSeen != nil {
			seen = age(now, *z.LastSeen) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%t\t%t\t%s\t%d\t%s\n", z.Name, z.Enabled, z.Online, seen, z.Dataplanes, time.Duration(z.SyncLagMs)*time.Millisecond)
	}
	return tw.Flush()
}

func servicesTable(w io.Writer, data []byte) error {
	var list struct {
		Items []serviceView `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the API answered with something that is not a service list: %w", err)
	}
	if len(list.Items) == 0 {
		_, err := fmt.Fprintln(w, "No services found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCES\tLOCAL\tZONES")
	for _, s := range list.Items {
		var zones []string
		for z, n := range s.Zones {
			zones = append(zones, fmt.Sprintf("%s (%d)", z, n))
		}
		sort.Strings(zones)
		fmt.Fprintf(tw, "%s\t%d\t%t\t%s\n", s.Name, s.Instances, s.Local, strings.Join(zones, ", "))
	}
	return tw.Flush()
}

// viewPath returns the API path of a view for a get argument, or "" when the
// argument names a resource type.
func viewPath(kind, name, mesh string) (string, func(io.Writer, []byte) error) {
	switch kind {
	case "zones", "zone":
		p := "/zones"
		if name != "" {
			p += "/" + url.PathEscape(name)
		}
		return p, zonesTable
	case "services", "service", "svc":
		return "/meshes/" + url.PathEscape(mesh) + "/services", servicesTable
	case "vips", "vip":
		return "/meshes/" + url.PathEscape(mesh) + "/vips", vipsTable
	case "proxies", "proxy":
		return "/proxies", proxiesTable
	case "zone-token-keys", "zone-token-key":
		return "/zone-token-keys", zoneTokenKeysTable
	}
	return "", nil
}

func vipsTable(w io.Writer, data []byte) error {
	var list struct {
		Items []struct {
			Service     string     `json:"service"`
			VIP         string     `json:"vip"`
			Proposed    bool       `json:"proposed"`
			UnusedSince *time.Time `json:"unusedSince"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the API answered with something that is not a VIP list: %w", err)
	}
	if len(list.Items) == 0 {
		_, err := fmt.Fprintln(w, "No VIPs found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tVIP\tSTATUS")
	for _, v := range list.Items {
		status := "assigned"
		switch {
		case v.Proposed:
			status = "proposed by this zone (global not reached yet)"
		case v.UnusedSince != nil:
			status = "unused since " + v.UnusedSince.Local().Format(time.DateTime) + " (kept during the cool-down)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Service, v.VIP, status)
	}
	return tw.Flush()
}

func proxiesTable(w io.Writer, data []byte) error {
	var list struct {
		Items []struct {
			Node      string            `json:"node"`
			Mesh      string            `json:"mesh"`
			Dataplane string            `json:"dataplane"`
			Kind      string            `json:"kind"`
			Streams   int               `json:"streams"`
			Connected time.Time         `json:"connected"`
			InSync    bool              `json:"inSync"`
			Nacked    map[string]string `json:"nacked"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the API answered with something that is not a proxy list: %w", err)
	}
	if len(list.Items) == 0 {
		_, err := fmt.Fprintln(w, "No proxies connected to this zone.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "MESH\tDATAPLANE\tKIND\tSTREAMS\tCONNECTED\tSTATE")
	now := time.Now()
	for _, p := range list.Items {
		mesh, name := p.Mesh, p.Dataplane
		if mesh == "" {
			mesh, name = "-", p.Node
		}
		state := "in sync"
		if !p.InSync {
			state = "updating"
		}
		if len(p.Nacked) > 0 {
			var types []string
			for t := range p.Nacked {
				types = append(types, t[strings.LastIndexByte(t, '.')+1:])
			}
			sort.Strings(types)
			state = "refused " + strings.Join(types, ", ") + " (atollctl inspect / GET .../xds for why)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\t%s\n", mesh, name, p.Kind, p.Streams, age(now, p.Connected), state)
	}
	return tw.Flush()
}
