package resource_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

// TestDecodeAllLineErrors feeds files with one mistake each and checks the
// whole message a user sees from atollctl apply -f dataplane.yaml: the
// line the mistake is on, the field's path, and what to write instead.
func TestDecodeAllLineErrors(t *testing.T) {
	const dp = "type: Dataplane\nmesh: default\nname: kong\n"
	tests := []struct {
		name string
		file string
		want string
	}{
		{"misspelt nested field", dp + "networking:\n  adress: 10.0.0.1\n",
			`dataplane.yaml:5: networking.adress: unknown field; did you mean "address"?`},
		{"misspelt top-level field", dp + "networkin:\n  address: 10.0.0.1\n",
			`dataplane.yaml:4: networkin: unknown field; did you mean "networking"?`},
		{"misspelt meta field", "type: Mesh\nnmae: default\n",
			`dataplane.yaml:2: nmae: unknown field; did you mean "name"?`},
		{"field in a list item", dp + "networking:\n  address: 10.0.0.1\n  inbound:\n  - port: 9001\n    tag: {atoll.io/service: kong}\n",
			`dataplane.yaml:8: networking.inbound[0].tag: unknown field; did you mean "tags"?`},
		{"second list item", dp + "networking:\n  inbound:\n  - port: 9001\n  - port: 9002\n    servicport: 80\n",
			`dataplane.yaml:8: networking.inbound[1].servicport: unknown field; did you mean "servicePort"?`},
		{"proto name accepted, typo suggests the JSON name", dp + "networking:\n  advertised_adress: a.example\n",
			`dataplane.yaml:5: networking.advertised_adress: unknown field; did you mean "advertisedAddress"?`},
		{"nothing close", dp + "networking:\n  inbound:\n  - colour: red\n",
			"dataplane.yaml:6: networking.inbound[0].colour: unknown field: use one of port, servicePort, address, tags, health"},
		{"case slip", "type: Zone\nname: zone-1\nEnabled: false\n",
			`dataplane.yaml:3: Enabled: unknown field; did you mean "enabled"?`},
		{"in the second document, lines count from the file's start", "type: Mesh\nname: default\n---\ntype: Zone\nname: zone-1\nenable: true\n",
			`dataplane.yaml:6: enable: unknown field; did you mean "enabled"?`},
		{"a list where a single value belongs", dp + "networking:\n  address: [10.0.0.1]\n",
			"dataplane.yaml:5: networking.address: must be a single value, not a list"},
		{"a value where a list belongs", dp + "networking:\n  inbound: 9001\n",
			"dataplane.yaml:5: networking.inbound: must be a list, not a single value (9001)"},
		{"a value where fields belong", dp + "networking: 10.0.0.1\n",
			"dataplane.yaml:4: networking: must be a map of fields (address, advertisedAddress, inbound, gateway), not a single value (10.0.0.1)"},
		{"labels not strings", "type: Mesh\nname: default\nlabels:\n  team: [a, b]\n",
			"dataplane.yaml:4: labels.team: must be a string, not a list"},
		{"name not a string", "type: Mesh\nname:\n  first: default\n",
			"dataplane.yaml:3: name: must be a string, not a map"},
		// yaml.v3 alone says line 5 or 6 for these: where the enclosing
		// mapping or list began.
		{"list item key indented one space too far", dp + "networking:\n  address: 10.0.0.1\n  inbound:\n  - port: 9001\n   servicePort: 8080\n",
			"dataplane.yaml:8: not valid YAML: did not find expected key (check this line's indentation against the lines above it)"},
		{"key indented one space too little", dp + "networking:\n  address: 10.0.0.1\n inbound:\n  - port: 9001\n",
			"dataplane.yaml:6: not valid YAML: did not find expected key (check this line's indentation against the lines above it)"},
		{"key indented one space too far", dp + "networking:\n  address: 10.0.0.1\n   inbound:\n  - port: 9001\n",
			"dataplane.yaml:6: not valid YAML: mapping values are not allowed in this context (check this line's indentation against the lines above it)"},
		{"a tab", dp + "networking:\n\taddress: 10.0.0.1\n",
			"dataplane.yaml:5: not valid YAML: found character that cannot start any token (YAML indents with spaces, not tabs)"},
		{"indentation in the second document", "type: Mesh\nname: default\n---\n" + dp + "networking:\n  inbound:\n  - port: 9001\n   servicePort: 8080\n",
			"dataplane.yaml:10: not valid YAML: did not find expected key (check this line's indentation against the lines above it)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resource.DecodeAll([]byte(tt.file))
			if err == nil {
				t.Fatal("DecodeAll accepted the file")
			}
			if got := yamlpos.InFile("dataplane.yaml", err).Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestDecodeLineErrors checks that a single document sent to the API is
// reported the same way, lines counted in the request body.
func TestDecodeLineErrors(t *testing.T) {
	_, err := resource.Decode([]byte("type: Dataplane\nmesh: default\nname: kong\nnetworking:\n  adress: 10.0.0.1\n"))
	if want := `line 5: networking.adress: unknown field; did you mean "address"?`; err == nil || err.Error() != want {
		t.Errorf("Decode() = %v, want %q", err, want)
	}
	_, err = resource.Decode([]byte(`{"type":"Dataplane","name":"kong","networking":{"adress":"127.0.0.1"}}`))
	if want := `line 1: networking.adress: unknown field; did you mean "address"?`; err == nil || err.Error() != want {
		t.Errorf("Decode() of JSON = %v, want %q", err, want)
	}
}

// TestDecodeIgnoresStatus reads what atollctl get zone -o yaml prints: the
// read-only status of any shape is dropped, the rest is the Zone.
func TestDecodeIgnoresStatus(t *testing.T) {
	doc := "type: Zone\nname: zone-1\nenabled: false\nstatus:\n  online: true\n  stats: {Dataplane: {sent: 3}}\n"
	rs, err := resource.DecodeAll([]byte(doc))
	if err != nil {
		t.Fatalf("DecodeAll() = %v", err)
	}
	z, ok := rs[0].Spec.(*v1alpha1.Zone)
	if len(rs) != 1 || !ok || z.Enabled == nil || *z.Enabled {
		t.Fatalf("DecodeAll() = %v, want zone-1 disabled", rs)
	}
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct {
		in   *bool
		want *bool
	}{
		{proto.Bool(true), nil},
		{proto.Bool(false), proto.Bool(false)},
		{nil, nil},
	} {
		r := &resource.Resource{Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-1"}, Spec: &v1alpha1.Zone{Enabled: tt.in}}
		resource.Normalize(r)
		if !proto.Equal(r.Spec, &v1alpha1.Zone{Enabled: tt.want}) {
			t.Errorf("Normalize(enabled %v) = %v, want enabled %v", tt.in, r.Spec, tt.want)
		}
	}
}

// TestDecodeAllMergeKeys keeps accepting YAML merge keys, whose fields
// protojson checks.
func TestDecodeAllMergeKeys(t *testing.T) {
	_, err := resource.DecodeAll([]byte("type: Dataplane\nmesh: default\nname: kong\nnetworking:\n  address: 127.0.0.1\n  gateway:\n    <<: {type: DELEGATED}\n    tags: {atoll.io/service: kong}\n"))
	if err != nil {
		t.Errorf("a merge key was refused: %v", err)
	}
}

func TestDecodeJSONSyntaxLine(t *testing.T) {
	_, err := resource.Decode([]byte("{\n  \"type\": \"Dataplane\",\n  \"name\": \"kong\"\n  \"mesh\": \"default\"\n}\n"))
	if want := "line 4: not valid JSON: invalid character '\"' after object key:value pair"; err == nil || err.Error() != want {
		t.Errorf("Decode() = %v, want %q", err, want)
	}
}

func TestDecodeAllJSONSyntaxLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"\n[\n  {\"type\": \"Mesh\", \"name\": \"a\"},\n  {\"type\": \"Mesh\" \"name\": \"b\"}\n]\n",
			"meshes.json:4: not valid JSON: invalid character '\"' after object key:value pair"},
		{"\n{\n  \"type\": \"Mesh\",\n  \"name\": \"a\"\n  \"x\": 1\n}\n",
			"meshes.json:5: not valid JSON: invalid character '\"' after object key:value pair"},
	}
	for _, tt := range tests {
		_, err := resource.DecodeAll([]byte(tt.in))
		if got := yamlpos.InFile("meshes.json", err); got == nil || got.Error() != tt.want {
			t.Errorf("DecodeAll(%q) = %v, want %q", tt.in, got, tt.want)
		}
	}
}
