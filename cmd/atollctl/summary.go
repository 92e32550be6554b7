package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// zoneSummary is what one zone offers other zones, gathered from its
// ZoneIngresses: its own record (the ingress address; every service too
// when an older zone wrote it) and one record per (mesh, tag set, port).
type zoneSummary struct {
	zone       string
	advertised string
	services   map[string]bool // mesh/service
	instances  uint32
	records    int
	oldest     *resource.Resource
}

// summarize gathers items, ZoneIngresses, by zone, sorted by zone.
func summarize(items []*resource.Resource) []*zoneSummary {
	by := map[string]*zoneSummary{}
	for _, r := range items {
		zi, ok := r.Spec.(*v1alpha1.ZoneIngress)
		if !ok {
			continue
		}
		s := by[zi.GetZone()]
		if s == nil {
			s = &zoneSummary{zone: zi.GetZone(), services: map[string]bool{}}
			by[zi.GetZone()] = s
		}
		s.records++
		if n := zi.GetNetworking(); n.GetAdvertisedAddress() != "" && (s.advertised == "" || r.Meta.Name == zi.GetZone()) {
			s.advertised = fmt.Sprintf("%s:%d", n.GetAdvertisedAddress(), n.GetAdvertisedPort())
		}
		for _, a := range zi.GetAvailableServices() {
			s.services[a.GetMesh()+"/"+a.GetTags()[resource.ServiceTag]] = true
			s.instances += a.GetInstances()
		}
		if s.oldest == nil || r.Meta.CreationTime.Before(s.oldest.Meta.CreationTime) {
			s.oldest = r
		}
	}
	out := make([]*zoneSummary, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].zone < out[j].zone })
	return out
}

// zoneIngressesTable writes one row per zone: what it offers, summed over
// its records.
func zoneIngressesTable(w io.Writer, items []*resource.Resource) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	now := clock()
	fmt.Fprintln(tw, "ZONE\tADVERTISED\tSERVICES\tINSTANCES\tRECORDS\tAGE")
	for _, s := range summarize(items) {
		adv := s.advertised
		if adv == "" {
			adv = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", s.zone, adv, len(s.services), s.instances, s.records, age(now, s.oldest.Meta.CreationTime))
	}
	return tw.Flush()
}

// ofZone keeps the ZoneIngresses of zone: `get zoneingress ZONE` shows the
// zone's whole summary, not its own record alone.
func ofZone(items []*resource.Resource, zone string) []*resource.Resource {
	var out []*resource.Resource
	for _, r := range items {
		if zi, ok := r.Spec.(*v1alpha1.ZoneIngress); ok && zi.GetZone() == zone {
			out = append(out, r)
		}
	}
	return out
}

// summaryOf gathers what zone offers from the ZoneIngresses the API holds,
// or nil when they cannot be read (the routes are shown all the same).
func (c *client) summaryOf(ctx context.Context, zone string) *zoneSummary {
	d, err := resource.Types.Get(resource.ZoneIngressType)
	if err != nil {
		return nil
	}
	items, err := c.list(ctx, d, "")
	if err != nil {
		return nil
	}
	if s := summarize(ofZone(items, zone)); len(s) == 1 {
		return s[0]
	}
	return nil
}
