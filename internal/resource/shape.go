package resource

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/atoll-mesh/atoll/internal/yamlpos"
)

// checkShape checks a parsed document against its type's spec before
// protojson reads it, so that an unknown field or a value of the wrong
// kind is reported with its line and path, and an unknown field with the
// closest known one. A document of no known type is left to Decode, which
// says what a resource must hold.
func (reg *Registry) checkShape(doc *yaml.Node) error {
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	var spec protoreflect.MessageDescriptor
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch {
		case k.Value == "labels":
			if err := checkLabels(v); err != nil {
				return err
			}
		case k.Value == "status":
			// read-only, any shape: ignored
		case metaFields[k.Value]:
			if v.Kind != yaml.ScalarNode && v.Kind != yaml.AliasNode {
				return &yamlpos.Error{Line: v.Line, Path: k.Value, Msg: "must be a string, not " + kindName(v)}
			}
			if k.Value == "type" {
				if d, err := reg.Get(Type(v.Value)); err == nil {
					spec = d.New().ProtoReflect().Descriptor()
				}
			}
		}
	}
	if spec == nil {
		return nil
	}
	known := append(metaFieldNames(), jsonNames(spec)...)
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if metaFields[k.Value] || k.Kind != yaml.ScalarNode || k.Tag == mergeTag {
			continue
		}
		fd := findField(spec, k.Value)
		if fd == nil {
			return yamlpos.UnknownField(k.Line, k.Value, k.Value, known)
		}
		if err := checkValue(fd, v, k.Value); err != nil {
			return err
		}
	}
	return nil
}

func checkLabels(v *yaml.Node) error {
	if isNull(v) || v.Kind == yaml.AliasNode {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		return &yamlpos.Error{Line: v.Line, Path: "labels", Msg: "must be a map of strings to strings, not " + kindName(v)}
	}
	for i := 1; i < len(v.Content); i += 2 {
		if c := v.Content[i]; c.Kind != yaml.ScalarNode && c.Kind != yaml.AliasNode {
			return &yamlpos.Error{Line: c.Line, Path: "labels." + v.Content[i-1].Value, Msg: "must be a string, not " + kindName(c)}
		}
	}
	return nil
}

// checkMessage checks the fields of a message's mapping node.
func checkMessage(md protoreflect.MessageDescriptor, n *yaml.Node, path string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == mergeTag {
			continue // merged fields are left to protojson
		}
		fd := findField(md, k.Value)
		if fd == nil {
			return yamlpos.UnknownField(k.Line, path+"."+k.Value, k.Value, jsonNames(md))
		}
		if err := checkValue(fd, v, path+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

// checkValue checks that v has the kind of value fd holds: a map, a list,
// a message's fields or a single value. Aliases and nulls are left to
// protojson.
func checkValue(fd protoreflect.FieldDescriptor, v *yaml.Node, path string) error {
	if isNull(v) || v.Kind == yaml.AliasNode {
		return nil
	}
	switch {
	case fd.IsMap():
		if v.Kind != yaml.MappingNode {
			return &yamlpos.Error{Line: v.Line, Path: path, Msg: "must be a map, not " + kindName(v)}
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			if err := checkSingle(fd.MapValue(), v.Content[i+1], path+"."+v.Content[i].Value); err != nil {
				return err
			}
		}
		return nil
	case fd.IsList():
		if v.Kind != yaml.SequenceNode {
			return &yamlpos.Error{Line: v.Line, Path: path, Msg: "must be a list, not " + kindName(v)}
		}
		for i, item := range v.Content {
			if err := checkSingle(fd, item, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		return nil
	}
	return checkSingle(fd, v, path)
}

// checkSingle checks one value of fd: the fields of a message, or a
// scalar. Well-known types (timestamps and the like) are left to protojson.
func checkSingle(fd protoreflect.FieldDescriptor, v *yaml.Node, path string) error {
	if isNull(v) || v.Kind == yaml.AliasNode {
		return nil
	}
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		md := fd.Message()
		if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return &yamlpos.Error{Line: v.Line, Path: path, Msg: "must be a map of fields (" + strings.Join(jsonNames(md), ", ") + "), not " + kindName(v)}
		}
		return checkMessage(md, v, path)
	}
	if v.Kind != yaml.ScalarNode {
		return &yamlpos.Error{Line: v.Line, Path: path, Msg: "must be a single value, not " + kindName(v)}
	}
	return nil
}

// mergeTag marks a YAML merge key (<<: *anchor).
const mergeTag = "!!merge"

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value (" + n.Value + ")"
}

// findField finds a field by its JSON name or its proto name, as protojson
// does.
func findField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(name))
}

func jsonNames(md protoreflect.MessageDescriptor) []string {
	fields := md.Fields()
	out := make([]string, fields.Len())
	for i := range out {
		out[i] = fields.Get(i).JSONName()
	}
	return out
}

func metaFieldNames() []string {
	return []string{"type", "mesh", "name", "labels", "version", "creationTime", "modificationTime", "status"}
}
