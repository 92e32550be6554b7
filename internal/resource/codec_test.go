package resource_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

const twoDataplanesYAML = `type: Dataplane
mesh: default
name: backend-1
networking:
  address: 127.0.0.1
  inbound:
  - port: 9001
    tags: {atoll.io/service: backend, atoll.io/protocol: grpc}
---
type: Dataplane
mesh: default
name: kong
networking:
  address: 127.0.0.1
  gateway: {type: DELEGATED, tags: {atoll.io/service: kong}}
`

var backendSpec = &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
	Address: "127.0.0.1",
	Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
		Port: 9001,
		Tags: map[string]string{resource.ServiceTag: "backend", resource.ProtocolTag: "grpc"},
	}},
}}

var kongSpec = &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
	Address: "127.0.0.1",
	Gateway: &v1alpha1.Dataplane_Networking_Gateway{
		Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
		Tags: map[string]string{resource.ServiceTag: "kong"},
	},
}}

// assertSameResource fails unless got and want have equal meta and spec.
func assertSameResource(t *testing.T, got, want *resource.Resource) {
	t.Helper()
	g, w := got.Meta, want.Meta
	if g.Type != w.Type || g.Mesh != w.Mesh || g.Name != w.Name || g.Version != w.Version {
		t.Errorf("meta = %s version %q, want %s version %q", got.Key(), g.Version, want.Key(), w.Version)
	}
	if !maps.Equal(g.Labels, w.Labels) {
		t.Errorf("labels = %v, want %v", g.Labels, w.Labels)
	}
	if !g.CreationTime.Equal(w.CreationTime) {
		t.Errorf("creationTime = %v, want %v", g.CreationTime, w.CreationTime)
	}
	if !g.ModificationTime.Equal(w.ModificationTime) {
		t.Errorf("modificationTime = %v, want %v", g.ModificationTime, w.ModificationTime)
	}
	if !proto.Equal(got.Spec, want.Spec) {
		t.Errorf("spec = %v, want %v", got.Spec, want.Spec)
	}
}

func TestDecode(t *testing.T) {
	created := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	modified := time.Date(2026, 1, 3, 8, 0, 0, 123456789, time.UTC)
	backend := &resource.Resource{
		Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "backend-1"},
		Spec: backendSpec,
	}
	tests := []struct {
		name string
		doc  string
		want *resource.Resource
	}{
		{name: "yaml", doc: strings.SplitN(twoDataplanesYAML, "---", 2)[0], want: backend},
		{name: "yaml gateway", doc: strings.SplitN(twoDataplanesYAML, "---\n", 2)[1], want: &resource.Resource{
			Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "kong"},
			Spec: kongSpec,
		}},
		{
			name: "json",
			doc: `{"type":"Dataplane","mesh":"default","name":"backend-1","networking":{"address":"127.0.0.1",` +
				`"inbound":[{"port":9001,"tags":{"atoll.io/service":"backend","atoll.io/protocol":"grpc"}}]}}`,
			want: backend,
		},
		{
			name: "yaml with all meta fields",
			doc: `type: Dataplane
mesh: default
name: backend-1
labels:
  team: payments
  atoll.io/zone: zone-1
version: "42"
creationTime: 2026-01-02T15:04:05Z
modificationTime: "2026-01-03T10:00:00.123456789+02:00"
networking:
  address: 127.0.0.1
  inbound:
  - port: 9001
    servicePort: 8080
    tags: {atoll.io/service: backend, atoll.io/protocol: grpc}
`,
			want: &resource.Resource{
				Meta: resource.Meta{
					Type: resource.DataplaneType, Mesh: "default", Name: "backend-1",
					Labels:       map[string]string{"team": "payments", resource.ZoneLabel: "zone-1"},
					Version:      "42",
					CreationTime: created, ModificationTime: modified,
				},
				Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
					Address: "127.0.0.1",
					Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
						Port: 9001, ServicePort: 8080,
						Tags: map[string]string{resource.ServiceTag: "backend", resource.ProtocolTag: "grpc"},
					}},
				}},
			},
		},
		{name: "global-scoped type", doc: "type: Zone\nname: zone-1\nenabled: false\n", want: &resource.Resource{
			Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-1"},
			Spec: &v1alpha1.Zone{Enabled: proto.Bool(false)},
		}},
		{name: "empty spec", doc: `{"type": "Mesh", "name": "default"}`, want: &resource.Resource{
			Meta: resource.Meta{Type: resource.MeshType, Name: "default"},
			Spec: &v1alpha1.Mesh{},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resource.Decode([]byte(tt.doc))
			if err != nil {
				t.Fatalf("Decode() error: %v", err)
			}
			assertSameResource(t, got, tt.want)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		// want are substrings the error must contain; notWant must not appear.
		want    []string
		notWant []string
	}{
		{
			name:    "unknown top-level spec field",
			doc:     "type: Dataplane\nmesh: default\nname: a\nnetworkin:\n  address: 127.0.0.1\n",
			want:    []string{"networkin"},
			notWant: []string{"proto:", "(line"},
		},
		{
			name:    "unknown nested spec field",
			doc:     "type: Dataplane\nmesh: default\nname: a\nnetworking:\n  address: 127.0.0.1\n  inbound:\n  - port: 9001\n    colour: red\n",
			want:    []string{"colour"},
			notWant: []string{"proto:", "(line"},
		},
		{
			name:    "unknown field in json",
			doc:     `{"type":"Mesh","name":"default","mtls":{}}`,
			want:    []string{"mtls"},
			notWant: []string{"proto:", "(line"},
		},
		{
			name:    "spec value of the wrong kind",
			doc:     "type: Dataplane\nmesh: default\nname: a\nnetworking:\n  inbound: 9001\n",
			want:    []string{"line 5: networking.inbound: must be a list, not a single value (9001)"},
			notWant: []string{"proto:"},
		},
		{name: "missing type", doc: "mesh: default\nname: a\n", want: []string{"type", "Dataplane"}},
		{name: "empty type", doc: `{"type":"","name":"a"}`, want: []string{"type"}},
		{name: "unknown type", doc: "type: Dataplan\nmesh: default\nname: a\n", want: []string{"Dataplan", "type"}},
		{name: "type not a string", doc: "type: [Dataplane]\nname: a\n", want: []string{"type"}},
		{name: "labels not strings", doc: "type: Mesh\nname: a\nlabels: {team: [a, b]}\n", want: []string{"labels"}},
		{name: "bad creation time", doc: "type: Mesh\nname: a\ncreationTime: yesterday\n", want: []string{"creationTime"}},
		{name: "yaml list", doc: "- a\n", want: []string{"object"}},
		{name: "number", doc: "42", want: []string{"object"}},
		{name: "json array", doc: `[{"type":"Mesh","name":"a"}]`, want: []string{"object"}},
		{name: "null", doc: "null", want: []string{"object"}},
		{name: "empty", doc: "", want: []string{"object"}},
		{name: "not yaml", doc: "type: Mesh\n  name: [a\n", want: []string{"YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := resource.Decode([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Decode() = %s, want an error", r.Key())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("error %q mentions %q", err, nw)
				}
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	doc := "type: Mesh\nname: default\n#"
	pad := func(size int) []byte { return []byte(doc + strings.Repeat("x", size-len(doc))) }

	if _, err := resource.Decode(pad(resource.MaxDocumentSize)); err != nil {
		t.Fatalf("Decode() of exactly MaxDocumentSize bytes: %v", err)
	}
	_, err := resource.Decode(pad(resource.MaxDocumentSize + 1))
	if err == nil {
		t.Fatalf("Decode() of MaxDocumentSize+1 bytes succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "limit") {
		t.Errorf("error %q does not mention the limit", err)
	}
}

func TestDecodeAll(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "yaml stream", in: twoDataplanesYAML},
		{name: "yaml with comments and empty documents", in: "# dataplanes of zone-1\n---\n---\n# nothing here\n---\n" +
			strings.Replace(twoDataplanesYAML, "---\n", "---\n# the gateway\n", 1) + "---\n"},
		{name: "json array", in: `[
  {"type":"Dataplane","mesh":"default","name":"backend-1","networking":{"address":"127.0.0.1",
    "inbound":[{"port":9001,"tags":{"atoll.io/service":"backend","atoll.io/protocol":"grpc"}}]}},
  {"type":"Dataplane","mesh":"default","name":"kong","networking":{"address":"127.0.0.1",
    "gateway":{"type":"DELEGATED","tags":{"atoll.io/service":"kong"}}}}
]`},
	}
	want := []*resource.Resource{
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "backend-1"}, Spec: backendSpec},
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "kong"}, Spec: kongSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resource.DecodeAll([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeAll() error: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("DecodeAll() returned %d resources, want %d", len(got), len(want))
			}
			for i := range want {
				assertSameResource(t, got[i], want[i])
			}
		})
	}
}

func TestDecodeAllSingleJSONObject(t *testing.T) {
	got, err := resource.DecodeAll([]byte(`{"type":"Mesh","name":"default"}`))
	if err != nil {
		t.Fatalf("DecodeAll() error: %v", err)
	}
	if len(got) != 1 || got[0].Key() != (resource.Key{Type: resource.MeshType, Name: "default"}) {
		t.Fatalf("DecodeAll() = %v, want one Mesh \"default\"", got)
	}
}

func TestDecodeAllEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n---\n"} {
		got, err := resource.DecodeAll([]byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("DecodeAll(%q) = %d resources, %v; want none and no error", in, len(got), err)
		}
	}
}

func TestDecodeAllErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "bad second yaml document",
			in:   "type: Mesh\nname: default\n---\ntype: Dataplan\nmesh: default\nname: a\n",
			want: []string{"document 2", "Dataplan"},
		},
		{
			name: "unknown field in second yaml document",
			in:   "type: Mesh\nname: default\n---\ntype: Zone\nname: zone-1\nenable: true\n",
			want: []string{"document 2", "enable"},
		},
		{name: "second yaml document not an object", in: "type: Mesh\nname: default\n---\n- a\n", want: []string{"document 2"}},
		{name: "second yaml document not yaml", in: "type: Mesh\nname: default\n---\nname: [a\n", want: []string{"document 2"}},
		{
			name: "bad second json item",
			in:   `[{"type":"Mesh","name":"default"},{"name":"b"}]`,
			want: []string{"item 2", "type"},
		},
		{name: "broken json array", in: `[{"type":"Mesh","name":"default"}`, want: []string{"JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resource.DecodeAll([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeAll() = %d resources, want an error", len(got))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// roundTripResources are valid resources of every shape the codec carries.
func roundTripResources() []*resource.Resource {
	return []*resource.Resource{
		{
			Meta: resource.Meta{
				Type: resource.DataplaneType, Mesh: "default", Name: "backend-1",
				Labels:           map[string]string{"team": "payments", resource.ZoneLabel: "zone-1"},
				Version:          "17",
				CreationTime:     time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
				ModificationTime: time.Date(2026, 1, 3, 8, 0, 0, 123456789, time.UTC),
			},
			Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{
				Address:           "10.0.0.1",
				AdvertisedAddress: "backend.example.com",
				Inbound: []*v1alpha1.Dataplane_Networking_Inbound{
					{Port: 9001, ServicePort: 8080, Tags: map[string]string{resource.ServiceTag: "backend", resource.ProtocolTag: "grpc"}},
					{Port: 9002, Address: "fd00::1", Tags: map[string]string{resource.ServiceTag: "backend-admin"}, Health: &v1alpha1.Health{Ready: true}},
				},
			}},
		},
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "default", Name: "kong"}, Spec: kongSpec},
		{Meta: resource.Meta{Type: resource.MeshType, Name: "default"}, Spec: &v1alpha1.Mesh{}},
		{Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-2"}, Spec: &v1alpha1.Zone{Enabled: proto.Bool(false)}},
		zoneIngress("zone-1"),
	}
}

func TestEncodeJSONRoundTrip(t *testing.T) {
	for _, r := range roundTripResources() {
		t.Run(r.Key().String(), func(t *testing.T) {
			js, err := resource.EncodeJSON(r)
			if err != nil {
				t.Fatalf("EncodeJSON() error: %v", err)
			}
			got, err := resource.Decode(js)
			if err != nil {
				t.Fatalf("Decode(EncodeJSON()) error: %v\n%s", err, js)
			}
			assertSameResource(t, got, r)
		})
	}
}

func TestEncodeJSONFieldOrder(t *testing.T) {
	tests := []struct {
		r      *resource.Resource
		prefix string
	}{
		{r: roundTripResources()[0], prefix: `{"type":"Dataplane","mesh":"default","name":"backend-1","labels":`},
		{r: roundTripResources()[1], prefix: `{"type":"Dataplane","mesh":"default","name":"kong","networking":`},
		{r: roundTripResources()[3], prefix: `{"type":"Zone","name":"zone-2","enabled":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.r.Key().String(), func(t *testing.T) {
			js, err := resource.EncodeJSON(tt.r)
			if err != nil {
				t.Fatalf("EncodeJSON() error: %v", err)
			}
			if !strings.HasPrefix(string(js), tt.prefix) {
				t.Errorf("EncodeJSON() = %s\nwant prefix %s", js, tt.prefix)
			}
			if strings.ContainsAny(string(js), "\n ") {
				t.Errorf("EncodeJSON() = %s, want compact JSON", js)
			}
		})
	}
}

func TestEncodeYAMLRoundTrip(t *testing.T) {
	for _, r := range roundTripResources() {
		t.Run(r.Key().String(), func(t *testing.T) {
			y, err := resource.EncodeYAML(r)
			if err != nil {
				t.Fatalf("EncodeYAML() error: %v", err)
			}
			if strings.Contains(string(y), "{") {
				t.Errorf("EncodeYAML() is not block style:\n%s", y)
			}
			if !strings.HasPrefix(string(y), "type: "+string(r.Meta.Type)+"\n") {
				t.Errorf("EncodeYAML() does not start with the type:\n%s", y)
			}
			got, err := resource.Decode(y)
			if err != nil {
				t.Fatalf("Decode(EncodeYAML()) error: %v\n%s", err, y)
			}
			assertSameResource(t, got, r)
		})
	}
}

func TestEncodeYAMLBlockStyle(t *testing.T) {
	y, err := resource.EncodeYAML(roundTripResources()[0])
	if err != nil {
		t.Fatalf("EncodeYAML() error: %v", err)
	}
	s := string(y)
	for _, want := range []string{"type: Dataplane\nmesh: default\nname: backend-1\n", "networking:\n", "  inbound:\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("EncodeYAML() does not contain %q:\n%s", want, s)
		}
	}
	if strings.ContainsAny(s, "{[") {
		t.Errorf("EncodeYAML() uses flow style:\n%s", s)
	}
}

// TestEncodeYAMLKeepsStrings checks that strings a YAML reader could take
// for numbers, booleans, nulls or times stay strings.
func TestEncodeYAMLKeepsStrings(t *testing.T) {
	values := []string{
		"123", "0123", "1.5", "1e3", "0x1F", "1_000", "true", "false", "null", "True",
		"yes", "no", "on", "off", "y", "n", "Y", "N", "Yes", "OFF", "1:20", "2001-12-14", "2001-12-14t21:59:43.10-05:00",
	}
	for _, val := range values {
		t.Run(val, func(t *testing.T) {
			r := dataplane(func(r *resource.Resource, n *v1alpha1.Dataplane_Networking) {
				r.Meta.Labels = map[string]string{"build": val}
				r.Meta.Version = val
				n.Inbound[0].Tags["canary"] = val
			})
			if err := resource.Validate(r); err != nil {
				t.Fatalf("test resource is invalid: %v", err)
			}
			y, err := resource.EncodeYAML(r)
			if err != nil {
				t.Fatalf("EncodeYAML() error: %v", err)
			}
			got, err := resource.Decode(y)
			if err != nil {
				t.Fatalf("Decode(EncodeYAML()) error: %v\n%s", err, y)
			}
			if got.Meta.Labels["build"] != val {
				t.Errorf("label build = %q, want %q\n%s", got.Meta.Labels["build"], val, y)
			}
			if got.Meta.Version != val {
				t.Errorf("version = %q, want %q\n%s", got.Meta.Version, val, y)
			}
			if tag := got.Spec.(*v1alpha1.Dataplane).GetNetworking().GetInbound()[0].GetTags()["canary"]; tag != val {
				t.Errorf("tag canary = %q, want %q\n%s", tag, val, y)
			}
		})
	}
}
