package resource_test

import (
	"maps"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/internal/resource"
)

// FuzzDecodeValidate feeds the file-format decoders arbitrary bytes, as the
// REST APIs and atollctl do. Decoding must never panic, and every resource
// that validates must survive EncodeJSON and EncodeYAML unchanged and still
// validate.
func FuzzDecodeValidate(f *testing.F) {
	seeds := []string{
		twoDataplanesYAML,
		"# comment\n---\n---\n" + twoDataplanesYAML + "---\n",
		`{"type":"Dataplane","mesh":"default","name":"backend-1","labels":{"team":"payments"},"version":"3",` +
			`"creationTime":"2026-01-02T15:04:05Z","networking":{"address":"fd00::1","advertisedAddress":"backend.example.com",` +
			`"inbound":[{"port":9001,"servicePort":8080,"tags":{"atoll.io/service":"backend","atoll.io/protocol":"http"},"health":{"ready":true}}]}}`,
		`[{"type":"Mesh","name":"default"},{"type":"Zone","name":"zone-1","enabled":false}]`,
		`{"type":"ZoneIngress","name":"zone-1-ingress","zone":"zone-1","networking":{"address":"10.0.0.9","port":10001},` +
			`"availableServices":[{"mesh":"default","tags":{"atoll.io/service":"backend"},"instances":2}]}`,
		"type: ZoneInsight\nname: zone-1\nsubscriptions:\n- id: a\n  connectTime: 2026-01-02T15:04:05Z\n  stats: {Dataplane: {sent: \"3\"}}\n",
		"type: Dataplane\nmesh: default\nname: x\nlabels: {build: \"yes\", v: \"123\"}\nnetworking: {address: h, inbound: [{port: 1, tags: {atoll.io/service: \"on\"}}]}\n",
		"type: Dataplane\nmesh: default\nname: kong\nnetworking:\n  address: 1.2.3\n  gateway: {type: 7}\n  inbound: [{port: 70000}]\n",
		"type: Dataplan\n",
		"type: Mesh\nname: a\nmtls: {}\n",
		"- a\n",
		"42",
		"null",
		"{",
		"\x00\xff",
		"a: &a [*a]\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := resource.DecodeAll(data)
		if err == nil {
			for _, r := range rs {
				checkRoundTrip(t, r)
			}
		}
		if r, err := resource.Decode(data); err == nil {
			checkRoundTrip(t, r)
		}
	})
}

// checkRoundTrip validates r and, if it is valid, checks that both encodings
// decode back to an equal, still valid resource.
func checkRoundTrip(t *testing.T, r *resource.Resource) {
	t.Helper()
	if r == nil || r.Spec == nil {
		t.Fatalf("decoded resource without a spec: %v", r)
	}
	if resource.Validate(r) != nil {
		return
	}
	encoders := []struct {
		name   string
		encode func(*resource.Resource) ([]byte, error)
	}{
		{"EncodeJSON", resource.EncodeJSON},
		{"EncodeYAML", resource.EncodeYAML},
	}
	for _, e := range encoders {
		out, err := e.encode(r)
		if err != nil {
			t.Fatalf("%s of a valid %s: %v", e.name, r.Key(), err)
		}
		got, err := resource.Decode(out)
		if err != nil {
			t.Fatalf("Decode(%s) of a valid %s: %v\n%s", e.name, r.Key(), err, out)
		}
		if !proto.Equal(got.Spec, r.Spec) {
			t.Fatalf("%s round trip changed the spec: got %v, want %v\n%s", e.name, got.Spec, r.Spec, out)
		}
		g, w := got.Meta, r.Meta
		if g.Type != w.Type || g.Mesh != w.Mesh || g.Name != w.Name || g.Version != w.Version ||
			!maps.Equal(g.Labels, w.Labels) ||
			!g.CreationTime.Equal(w.CreationTime) || !g.ModificationTime.Equal(w.ModificationTime) {
			t.Fatalf("%s round trip changed the meta: got %+v, want %+v\n%s", e.name, g, w, out)
		}
		if err := resource.Validate(got); err != nil {
			t.Fatalf("%s round trip made a valid %s invalid: %v\n%s", e.name, r.Key(), err, out)
		}
	}
}
