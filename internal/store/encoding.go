package store

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// KeyPath is the backend key of a resource: "type/mesh/name", with an empty
// mesh for global-scoped types. Names and meshes cannot contain '/'.
func KeyPath(k resource.Key) string {
	return string(k.Type) + "/" + k.Mesh + "/" + k.Name
}

// ListPrefix is the backend key prefix of every resource of type t in mesh
// (every mesh when mesh is "").
func ListPrefix(t resource.Type, mesh string) string {
	if mesh == "" {
		return string(t) + "/"
	}
	return string(t) + "/" + mesh + "/"
}

// ParseKeyPath is the inverse of KeyPath.
func ParseKeyPath(p string) (resource.Key, error) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return resource.Key{}, fmt.Errorf("malformed store key %q: want type/mesh/name", p)
	}
	return resource.Key{Type: resource.Type(parts[0]), Mesh: parts[1], Name: parts[2]}, nil
}

// Marshal encodes r for storage. The version is not encoded: it is the
// backend's revision.
func Marshal(r *resource.Resource) ([]byte, error) {
	spec, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", r.Key(), err)
	}
	sr := &v1alpha1.StoredResource{
		Meta: &v1alpha1.StoredMeta{
			Type:   string(r.Meta.Type),
			Mesh:   r.Meta.Mesh,
			Name:   r.Meta.Name,
			Labels: r.Meta.Labels,
		},
		Spec: spec,
	}
	if !r.Meta.CreationTime.IsZero() {
		sr.Meta.CreationTime = timestamppb.New(r.Meta.CreationTime)
	}
	if !r.Meta.ModificationTime.IsZero() {
		sr.Meta.ModificationTime = timestamppb.New(r.Meta.ModificationTime)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(sr)
}

// Unmarshal decodes a stored resource and gives it version.
func Unmarshal(data []byte, version string) (*resource.Resource, error) {
	sr, meta, err := unmarshalMeta(data, version)
	if err != nil {
		return nil, err
	}
	d, _ := resource.Types.Get(meta.Type)
	spec := d.New()
	if err := proto.Unmarshal(sr.GetSpec(), spec); err != nil {
		return nil, fmt.Errorf("decoding stored %s %q: %w", d.Type, meta.Name, err)
	}
	return &resource.Resource{Meta: meta, Spec: spec}, nil
}

// UnmarshalMeta decodes only the meta of a stored resource: enough to check
// a version or keep a creation time without decoding a large spec.
func UnmarshalMeta(data []byte, version string) (resource.Meta, error) {
	_, meta, err := unmarshalMeta(data, version)
	return meta, err
}

func unmarshalMeta(data []byte, version string) (*v1alpha1.StoredResource, resource.Meta, error) {
	var sr v1alpha1.StoredResource
	if err := proto.Unmarshal(data, &sr); err != nil {
		return nil, resource.Meta{}, fmt.Errorf("decoding stored resource: %w", err)
	}
	m := sr.GetMeta()
	d, err := resource.Types.Get(resource.Type(m.GetType()))
	if err != nil {
		return nil, resource.Meta{}, fmt.Errorf("decoding stored resource %q: %w", m.GetName(), err)
	}
	meta := resource.Meta{
		Type:    d.Type,
		Mesh:    m.GetMesh(),
		Name:    m.GetName(),
		Labels:  m.GetLabels(),
		Version: version,
	}
	if m.GetCreationTime() != nil {
		meta.CreationTime = m.GetCreationTime().AsTime()
	}
	if m.GetModificationTime() != nil {
		meta.ModificationTime = m.GetModificationTime().AsTime()
	}
	return &sr, meta, nil
}
