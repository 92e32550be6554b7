package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	Status     string     `json:"status"`
	LastSeen   *time.Time `json:"lastSeen"`
	Dataplanes int        `json:"dataplanes"`
	SyncLagMs  int64      `json:"syncLagMs"`
}

type serviceView struct {
	Name      string            `json:"name"`
	Zones     map[string]uint32 `json:"zones"`
	Local     bool              `json:"local"`
	Instances uint32            `json:"instances"`
	Reachable bool              `json:"reachable"`
	Reach     map[string]string `json:"reach"`
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
	fmt.Fprintln(tw, "ZONE\tSTATUS\tDATAPLANES\tSYNC LAG\tLAST MESSAGE")
	now := clock()
	for _, z := range items {
		status := z.Status
		switch {
		case status != "":
		case !z.Enabled: // a global older than this atollctl
			status = "Disabled"
		case z.Online:
			status = "Online"
		default:
			status = "Offline"
		}
		// The lag is the global's: how long the oldest change it pushed
		// and the zone has not ACKed had waited when the global last
		// recorded the session. Only a live session has one.
		lag := "-"
		if z.Online {
			lag = (time.Duration(z.SyncLagMs) * time.Millisecond).Round(100 * time.Millisecond).String()
		}
		seen := "never"
		if z.LastSeen != nil {
			seen = age(now, *z.LastSeen) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", z.Name, status, z.Dataplanes, lag, seen)
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
	fmt.Fprintln(tw, "SERVICE\tINSTANCES\tZONES\tREACHABLE\tHOW")
	for _, s := range list.Items {
		var zones, how []string
		for _, z := range sortedKeys(s.Zones) {
			zones = append(zones, fmt.Sprintf("%s (%d)", z, s.Zones[z]))
			if h := s.Reach[z]; h != "" {
				how = append(how, z+": "+h)
			}
		}
		reachable := "no"
		switch {
		case s.Reach == nil:
			reachable = "unknown (the zone is older than atollctl)"
		case s.Reachable:
			reachable = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.Instances, strings.Join(zones, ", "), reachable, orDash(strings.Join(how, "; ")))
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
			proxyItem
			Streams   int       `json:"streams"`
			Connected time.Time `json:"connected"`
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
	now := clock()
	for _, p := range list.Items {
		mesh, name := p.Mesh, p.Dataplane
		state := p.state()
		switch {
		case mesh == "":
			mesh, name = "-", p.Node
			if len(p.Nacked) > 0 {
				state += " (GET /zoneingresses/" + name + "/xds says why)"
			}
		case len(p.Nacked) > 0:
			state += " (atollctl inspect dataplane " + name + " --mesh " + mesh + " says why)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s ago\t%s\n", mesh, name, p.Kind, p.Streams, age(now, p.Connected), state)
	}
	return tw.Flush()
}
