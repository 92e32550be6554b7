package kds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// systemLabels are set by the storing control plane, not carried as content.
var systemLabels = map[string]bool{resource.ZoneLabel: true, resource.OriginLabel: true}

// WireKey is the key of a resource within its type on the wire: "mesh/name".
func WireKey(mesh, name string) string { return mesh + "/" + name }

// SplitWireKey is the inverse of WireKey.
func SplitWireKey(key string) (mesh, name string, err error) {
	mesh, name, ok := strings.Cut(key, "/")
	if !ok || name == "" {
		return "", "", fmt.Errorf("key %q is not mesh/name", key)
	}
	return mesh, name, nil
}

// ContentVersion hashes what a resource is — its spec and its non-system
// labels — so both ends compute the same version for the same content.
func ContentVersion(spec []byte, labels map[string]string) string {
	h := sha256.New()
	h.Write(spec)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if !systemLabels[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(labels[k]))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// ToWire encodes r for a Push, with name as it should appear to the peer.
func ToWire(r *resource.Resource, name string) (*v1alpha1.WireResource, error) {
	spec, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", r.Key(), err)
	}
	labels := map[string]string{}
	for k, v := range r.Meta.Labels {
		if !systemLabels[k] {
			labels[k] = v
		}
	}
	return &v1alpha1.WireResource{
		Mesh: r.Meta.Mesh, Name: name, Labels: labels,
		Version: ContentVersion(spec, labels), Spec: spec,
	}, nil
}

// FromWire decodes a received resource of type t. It checks the encoding
// but not the content: call resource.Validate.
func FromWire(t resource.Type, w *v1alpha1.WireResource) (*resource.Resource, error) {
	d, err := resource.Types.Get(t)
	if err != nil {
		return nil, err
	}
	spec := d.New()
	if err := proto.Unmarshal(w.GetSpec(), spec); err != nil {
		return nil, fmt.Errorf("spec does not decode as %s: %w", t, err)
	}
	labels := map[string]string{}
	for k, v := range w.GetLabels() {
		labels[k] = v
	}
	return &resource.Resource{
		Meta: resource.Meta{Type: t, Mesh: w.GetMesh(), Name: w.GetName(), Labels: labels},
		Spec: spec,
	}, nil
}

// VersionOf is the content version of a stored resource.
func VersionOf(r *resource.Resource) (string, error) {
	w, err := ToWire(r, r.Meta.Name)
	if err != nil {
		return "", err
	}
	return w.Version, nil
}

// WireMemo remembers the wire form of stored resources by key, wire name
// and store version, so that sessions sending the same large resources
// (every zone's ZoneIngress to every other zone) encode and hash each
// version once. Safe for concurrent use; the wire forms it returns are
// shared and must not be modified.
type WireMemo struct {
	mu sync.Mutex
	m  map[memoKey]memoEntry
}

type memoKey struct {
	key  resource.Key
	name string
}

type memoEntry struct {
	version string
	w       *v1alpha1.WireResource
}

// ToWire is ToWire, remembered. r must carry its store version.
func (m *WireMemo) ToWire(r *resource.Resource, name string) (*v1alpha1.WireResource, error) {
	k := memoKey{r.Key(), name}
	m.mu.Lock()
	e, ok := m.m[k]
	m.mu.Unlock()
	if ok && e.version == r.Meta.Version && r.Meta.Version != "" {
		return e.w, nil
	}
	w, err := ToWire(r, name)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.m == nil {
		m.m = map[memoKey]memoEntry{}
	}
	m.m[k] = memoEntry{version: r.Meta.Version, w: w}
	m.mu.Unlock()
	return w, nil
}

// Forget drops what is remembered of type t for keys live does not hold
// (resources deleted since), so the memo stays as small as the store.
func (m *WireMemo) Forget(t resource.Type, live func(resource.Key) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.m {
		if k.key.Type == t && !live(k.key) {
			delete(m.m, k)
		}
	}
}

// ForgetName drops what is remembered of the resource at key sent as name
// (a resource deleted since), without going over the rest.
func (m *WireMemo) ForgetName(key resource.Key, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, memoKey{key, name})
}
