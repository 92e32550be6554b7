package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// printTable writes a readable table with the columns that matter for d.
func printTable(w io.Writer, d *resource.Descriptor, items []*resource.Resource) error {
	if len(items) == 0 {
		_, err := fmt.Fprintf(w, "No %s found.\n", d.Plural)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	now := clock()
	switch d.Type {
	case resource.DataplaneType:
		return dataplanesTable(w, items, nil)
	case resource.VIPTableType:
		// One record per service, named after a hash of it: show whose it
		// is. A mesh's legacy table (all its services) lasts until the
		// global migrates it.
		fmt.Fprintln(tw, "MESH\tNAME\tSERVICE\tVIP\tVIP6\tAGE")
		for _, r := range items {
			entries := r.Spec.(*v1alpha1.VIPTable).GetEntries()
			service, vip, vip6 := fmt.Sprintf("%d services (legacy table)", len(entries)), "-", "-"
			if r.Meta.Name != resource.VIPTableName && len(entries) == 1 {
				service, vip, vip6 = entries[0].GetService(), entries[0].GetVip(), orDash(entries[0].GetVip6())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Meta.Mesh, r.Meta.Name, service, vip, vip6, age(now, r.Meta.CreationTime))
		}
	case resource.MeshType:
		fmt.Fprintln(tw, "NAME\tCROSS-ZONE\tAGE")
		for _, r := range items {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Meta.Name, r.Spec.(*v1alpha1.Mesh).GetCrossZone().GetMode(), age(now, r.Meta.CreationTime))
		}
	case resource.ZoneIngressType:
		return zoneIngressesTable(w, items)
	default:
		if d.Scope == resource.ScopeMesh {
			fmt.Fprintln(tw, "MESH\tNAME\tAGE")
			for _, r := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Meta.Mesh, r.Meta.Name, age(now, r.Meta.CreationTime))
			}
		} else {
			fmt.Fprintln(tw, "NAME\tAGE")
			for _, r := range items {
				fmt.Fprintf(tw, "%s\t%s\n", r.Meta.Name, age(now, r.Meta.CreationTime))
			}
		}
	}
	return tw.Flush()
}

func dataplaneSummary(dp *v1alpha1.Dataplane) (kind, services string) {
	n := dp.GetNetworking()
	if gw := n.GetGateway(); gw != nil {
		return "gateway (delegated)", gw.GetTags()[resource.ServiceTag]
	}
	var parts []string
	for _, in := range n.GetInbound() {
		parts = append(parts, fmt.Sprintf("%s:%d", in.GetTags()[resource.ServiceTag], in.GetPort()))
	}
	sort.Strings(parts)
	return "standard", strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age is a short human duration: 42s, 5m, 3h, 2d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
