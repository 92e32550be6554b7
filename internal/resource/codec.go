package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

// metaFields are the top-level keys of the file format that are not spec.
// status is what atollctl get -o yaml shows of a resource's state (a
// zone's connection): read-only, it is ignored, so that output applies
// back.
var metaFields = map[string]bool{
	"type": true, "mesh": true, "name": true, "labels": true,
	"version": true, "creationTime": true, "modificationTime": true,
	"status": true,
}

// MaxDocumentSize bounds one resource document. Larger input is refused
// before it is parsed.
const MaxDocumentSize = 1 << 20

// Decode reads one resource in the file format, YAML or JSON. It checks the
// shape (known type, known fields, right value kinds) but not the values:
// call Validate for that.
func Decode(data []byte) (*Resource, error) {
	return Types.Decode(data)
}

// Decode reads one resource of a type in the registry.
func (reg *Registry) Decode(data []byte) (*Resource, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("resource is %d bytes: the limit is %d", len(data), MaxDocumentSize)
	}
	jsonData, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			if jerr := jsonSyntax(data); jerr != nil {
				return nil, jerr
			}
		}
		if perr := yamlpos.ParseAll(data); perr != nil {
			return nil, yamlpos.Syntax(data, perr)
		}
		return nil, fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(jsonData, &fields); err != nil || fields == nil {
		return nil, errors.New("a resource must be an object with type, name and (for mesh-scoped types) mesh")
	}
	r := &Resource{}
	var typ string
	for field, dst := range map[string]*string{"type": &typ, "mesh": &r.Meta.Mesh, "name": &r.Meta.Name, "version": &r.Meta.Version} {
		if raw, ok := fields[field]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("%s: must be a string", field)
			}
		}
	}
	for field, dst := range map[string]*time.Time{"creationTime": &r.Meta.CreationTime, "modificationTime": &r.Meta.ModificationTime} {
		if raw, ok := fields[field]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("%s: must be an RFC 3339 time such as 2026-01-02T15:04:05Z", field)
			}
		}
	}
	if raw, ok := fields["labels"]; ok {
		if err := json.Unmarshal(raw, &r.Meta.Labels); err != nil {
			return nil, errors.New("labels: must be a map of strings to strings")
		}
	}
	if typ == "" {
		return nil, fmt.Errorf("type: is required: use one of %s", strings.Join(reg.typeNames(), ", "))
	}
	d, err := reg.Get(Type(typ))
	if err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	r.Meta.Type = d.Type
	var node yaml.Node
	if yaml.Unmarshal(data, &node) == nil {
		if err := reg.checkShape(&node); err != nil {
			return nil, err
		}
	}
	spec := map[string]json.RawMessage{}
	for k, v := range fields {
		if !metaFields[k] {
			spec[k] = v
		}
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	r.Spec = d.New()
	if err := protojson.Unmarshal(specJSON, r.Spec); err != nil {
		return nil, fmt.Errorf("%s: %s", d.Type, cleanProtoError(err))
	}
	return r, nil
}

// jsonSyntax reports a JSON syntax error in data at its line, or nil.
func jsonSyntax(data []byte) error {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(data, &v); errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return &yamlpos.Error{Line: line, Msg: "not valid JSON: " + se.Error()}
	}
	return nil
}

var protoErrNoise = regexp.MustCompile(`^proto:\s*|\s*\(line \d+:\d+\):?`)

// cleanProtoError drops protojson's prefix and line numbers, which refer to
// an intermediate document, not to the user's file.
func cleanProtoError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	msg = protoErrNoise.ReplaceAllString(msg, "")
	if strings.Contains(msg, "unexpected token") {
		msg = strings.TrimPrefix(msg, "syntax error ") + ": a value has the wrong kind (a list, map, number or string where another is expected): compare with the file format in the README"
	}
	return msg
}

// DecodeAll reads a stream of resources separated by YAML document markers
// ("---"), or one JSON object, or a JSON array of objects.
func DecodeAll(data []byte) ([]*Resource, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var docs []json.RawMessage
		if err := json.Unmarshal(trimmed, &docs); err != nil {
			if jerr := jsonSyntax(data); jerr != nil {
				return nil, jerr
			}
			return nil, fmt.Errorf("not a valid JSON array: %w", err)
		}
		out := make([]*Resource, 0, len(docs))
		for i, doc := range docs {
			r, err := Decode(doc)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	var out []*Resource
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 1; ; i++ {
		var node yaml.Node
		if err := dec.Decode(&node); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if len(trimmed) > 0 && trimmed[0] == '{' {
				if jerr := jsonSyntax(data); jerr != nil {
					return nil, jerr
				}
			}
			return nil, fmt.Errorf("document %d: %w", i, yamlpos.Syntax(data, err))
		}
		if isEmptyDocument(&node) {
			continue
		}
		// Checked here, where lines count from the start of the stream.
		if err := Types.checkShape(&node); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		doc, err := yaml.Marshal(&node)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		r, err := Decode(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func isEmptyDocument(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return true
		}
		c := n.Content[0]
		return c.Kind == yaml.ScalarNode && c.Tag == "!!null"
	}
	return false
}

// EncodeJSON writes r in the file format as compact JSON: meta fields first,
// then the spec's fields.
func EncodeJSON(r *Resource) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	writeField := func(k string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
		return nil
	}
	_ = writeField("type", r.Meta.Type)
	if r.Meta.Mesh != "" {
		_ = writeField("mesh", r.Meta.Mesh)
	}
	_ = writeField("name", r.Meta.Name)
	if len(r.Meta.Labels) > 0 {
		_ = writeField("labels", r.Meta.Labels)
	}
	if r.Meta.Version != "" {
		_ = writeField("version", r.Meta.Version)
	}
	if !r.Meta.CreationTime.IsZero() {
		_ = writeField("creationTime", r.Meta.CreationTime.UTC().Format(time.RFC3339Nano))
	}
	if !r.Meta.ModificationTime.IsZero() {
		_ = writeField("modificationTime", r.Meta.ModificationTime.UTC().Format(time.RFC3339Nano))
	}
	if r.Spec != nil {
		spec, err := protojson.Marshal(r.Spec)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r.Key(), err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, spec); err != nil {
			return nil, fmt.Errorf("encoding %s: %w", r.Key(), err)
		}
		inner := bytes.TrimSpace(compact.Bytes())
		inner = inner[1 : len(inner)-1] // drop the braces
		if len(inner) > 0 {
			b.WriteByte(',')
			b.Write(inner)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// EncodeYAML writes r in the file format as block-style YAML, keeping the
// field order of EncodeJSON.
func EncodeYAML(r *Resource) ([]byte, error) {
	js, err := EncodeJSON(r)
	if err != nil {
		return nil, err
	}
	return JSONToYAML(js)
}

// JSONToYAML turns JSON into block-style YAML, keeping key order.
func JSONToYAML(js []byte) ([]byte, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(js, &node); err != nil {
		return nil, err
	}
	clearStyle(&node)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func clearStyle(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode {
		n.Style = 0
	} else if n.Style == yaml.DoubleQuotedStyle && readsBackAsString(n.Value) {
		n.Style = 0 // the encoder re-quotes where YAML 1.2 needs it
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// readsBackAsString reports whether s, written unquoted, is read back as the
// same string by Decode. The encoder only quotes for YAML 1.2, but Decode
// reads YAML 1.1, where yes, on, y and the like are booleans.
func readsBackAsString(s string) bool {
	var v any
	if err := sigsyaml.Unmarshal([]byte(s), &v); err != nil {
		return false
	}
	got, ok := v.(string)
	return ok && got == s
}
