package kds_test

import (
	"fmt"
	"testing"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

func TestDirectionsComeFromTheRegistry(t *testing.T) {
	cases := []struct {
		name string
		got  []resource.Type
		want string
	}{
		{"zone sends", kds.SentBy(resource.Types, kds.ZoneSide), "[Dataplane ZoneIngress]"},
		{"global sends", kds.SentBy(resource.Types, kds.GlobalSide), "[Mesh ServiceEndpoints VIPTable ZoneIngress]"},
		{"zone receives", kds.ReceivedBy(resource.Types, kds.ZoneSide), "[Mesh ServiceEndpoints VIPTable ZoneIngress]"},
		{"global receives", kds.ReceivedBy(resource.Types, kds.GlobalSide), "[Dataplane ZoneIngress]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fmt.Sprint(c.got); got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestANewTypeFollowsItsDeclaredDirection(t *testing.T) {
	reg := resource.NewRegistry(
		&resource.Descriptor{Type: "Up", Singular: "up", Plural: "ups", Sync: resource.SyncZoneToGlobal},
		&resource.Descriptor{Type: "Down", Singular: "down", Plural: "downs", Sync: resource.SyncGlobalToZones},
		&resource.Descriptor{Type: "Local", Singular: "local", Plural: "locals", Sync: resource.SyncNone},
	)
	if got := fmt.Sprint(kds.SentBy(reg, kds.ZoneSide)); got != "[Up]" {
		t.Errorf("zone sends %s, want [Up]", got)
	}
	if got := fmt.Sprint(kds.SentBy(reg, kds.GlobalSide)); got != "[Down]" {
		t.Errorf("global sends %s, want [Down]", got)
	}
}
