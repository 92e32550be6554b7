package kds_test

import (
	"fmt"
	"maps"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
	"github.com/atoll-mesh/atoll/kds"
)

func TestContentVersion(t *testing.T) {
	spec := []byte("spec bytes")
	labels := map[string]string{"team": "payments", "env": "prod", "k8s.atoll.io/namespace": "shop"}
	base := kds.ContentVersion(spec, labels)
	with := func(changes map[string]string) map[string]string {
		out := maps.Clone(labels)
		maps.Copy(out, changes)
		return out
	}
	without := func(key string) map[string]string {
		out := maps.Clone(labels)
		delete(out, key)
		return out
	}

	cases := []struct {
		name   string
		spec   []byte
		labels map[string]string
		same   bool
	}{
		{"the same labels in a new map", spec, map[string]string{"env": "prod", "k8s.atoll.io/namespace": "shop", "team": "payments"}, true},
		{"a zone label added", spec, with(map[string]string{resource.ZoneLabel: "zone-1"}), true},
		{"an origin label added", spec, with(map[string]string{resource.OriginLabel: "zone"}), true},
		{"both system labels added", spec, with(map[string]string{resource.ZoneLabel: "zone-2", resource.OriginLabel: "global"}), true},
		{"the spec changed", []byte("spec bytez"), labels, false},
		{"no spec", nil, labels, false},
		{"a label value changed", spec, with(map[string]string{"env": "dev"}), false},
		{"a label added", spec, with(map[string]string{"tier": "web"}), false},
		{"a label removed", spec, without("team"), false},
		{"the key/value boundary moved", spec, map[string]string{"env": "prod", "k8s.atoll.io/namespace": "shop", "tea": "mpayments"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := kds.ContentVersion(c.spec, c.labels)
			if (got == base) != c.same {
				t.Errorf("version %s, base %s: same = %v, want %v", got, base, got == base, c.same)
			}
		})
	}

	t.Run("map order does not matter", func(t *testing.T) {
		up, down := map[string]string{}, map[string]string{}
		for i := range 64 {
			up[fmt.Sprintf("label-%02d", i)] = fmt.Sprint(i)
			down[fmt.Sprintf("label-%02d", 63-i)] = fmt.Sprint(63 - i)
		}
		want := kds.ContentVersion(spec, up)
		// Go randomises map iteration, so repeating covers many orders.
		for range 50 {
			if got := kds.ContentVersion(spec, down); got != want {
				t.Fatalf("version %s, want %s", got, want)
			}
		}
	})
}

func TestToWireFromWireRoundTrip(t *testing.T) {
	labelled := storetest.Dataplane("default", "dp-1", 8080)
	labelled.Meta.Labels = map[string]string{"team": "payments", resource.ZoneLabel: "zone-1", resource.OriginLabel: "zone"}
	cases := []struct {
		name string
		in   *resource.Resource
		// wire is the name the peer sees.
		wire string
	}{
		{"a dataplane", storetest.Dataplane("default", "dp-1", 8080), "dp-1"},
		{"a dataplane with labels", labelled, "dp-1"},
		{"a dataplane renamed for the peer", storetest.Dataplane("default", "dp-1", 8080), "dp-1.zone-1"},
		{"a mesh", &resource.Resource{Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{}}, "default"},
		{"a zone ingress", &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1-ingress"},
			Spec: &v1alpha1.ZoneIngress{Zone: "zone-1", AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{
				{Mesh: "default", Tags: map[string]string{resource.ServiceTag: "backend"}, Instances: 3},
			}},
		}, "zone-1-ingress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := kds.ToWire(c.in, c.wire)
			if err != nil {
				t.Fatalf("ToWire: %v", err)
			}
			if _, leaked := w.GetLabels()[resource.ZoneLabel]; leaked {
				t.Errorf("the zone label went on the wire: %v", w.GetLabels())
			}
			out, err := kds.FromWire(c.in.Meta.Type, w)
			if err != nil {
				t.Fatalf("FromWire: %v", err)
			}
			if out.Meta.Type != c.in.Meta.Type || out.Meta.Mesh != c.in.Meta.Mesh || out.Meta.Name != c.wire {
				t.Errorf("meta %+v, want type %s mesh %q name %q", out.Meta, c.in.Meta.Type, c.in.Meta.Mesh, c.wire)
			}
			if !proto.Equal(out.Spec, c.in.Spec) {
				t.Errorf("spec %v, want %v", out.Spec, c.in.Spec)
			}
			again, err := kds.ToWire(out, c.wire)
			if err != nil {
				t.Fatalf("ToWire of the decoded resource: %v", err)
			}
			if !proto.Equal(again, w) {
				t.Errorf("re-encoded %v, want %v", again, w)
			}
			if v, err := kds.VersionOf(c.in); err != nil || v != w.GetVersion() {
				t.Errorf("VersionOf = %q, %v; want the wire version %q", v, err, w.GetVersion())
			}
		})
	}
}

func TestFromWireRefusesWhatDoesNotDecode(t *testing.T) {
	good := dataplane(t, "dp-1", 8080)
	cases := []struct {
		name string
		typ  resource.Type
		w    *v1alpha1.WireResource
	}{
		{"an unknown type", "NoSuchType", good},
		{"a truncated spec", resource.DataplaneType, &v1alpha1.WireResource{Mesh: "default", Name: "dp-1", Spec: []byte{0xff}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r, err := kds.FromWire(c.typ, c.w); err == nil {
				t.Errorf("decoded %+v, want an error", r)
			}
		})
	}
}

func TestSplitWireKey(t *testing.T) {
	cases := []struct {
		key, mesh, name string
		ok              bool
	}{
		{"default/dp-1", "default", "dp-1", true},
		{"/zone-1", "", "zone-1", true},
		{"noslash", "", "", false},
		{"default/", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			mesh, name, err := kds.SplitWireKey(c.key)
			if (err == nil) != c.ok {
				t.Fatalf("SplitWireKey(%q) error = %v, want ok %v", c.key, err, c.ok)
			}
			if mesh != c.mesh || name != c.name {
				t.Errorf("got %q %q, want %q %q", mesh, name, c.mesh, c.name)
			}
			if c.ok && kds.WireKey(mesh, name) != c.key {
				t.Errorf("WireKey(%q, %q) = %q, want %q", mesh, name, kds.WireKey(mesh, name), c.key)
			}
		})
	}
}
