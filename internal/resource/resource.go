package resource

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// Type names a resource type, as written in the file format ("Dataplane").
type Type string

// The resource types of atoll.
const (
	MeshType        Type = "Mesh"
	DataplaneType   Type = "Dataplane"
	ZoneIngressType Type = "ZoneIngress"
	ZoneType        Type = "Zone"
	ZoneInsightType Type = "ZoneInsight"
	VIPTableType    Type = "VIPTable"
	// ServiceEndpointsType: one zone's instances of one service, relayed
	// by the global for meshes whose cross-zone mode is Direct.
	ServiceEndpointsType Type = "ServiceEndpoints"
)

// VIPTableName is the name of a mesh's legacy VIPTable, which held every
// entry of the mesh; each service now has its own (VIPRecordName).
const VIPTableName = "vips"

// Well-known labels and tags.
const (
	// ZoneLabel names the zone a resource comes from.
	ZoneLabel = "atoll.io/zone"
	// OriginLabel is "zone" or "global": the control plane that owns the resource.
	OriginLabel = "atoll.io/origin"
	// NamespaceLabel is the Kubernetes namespace of a resource from a
	// Kubernetes zone.
	NamespaceLabel = "k8s.atoll.io/namespace"

	// ServiceTag names the service of an inbound or a gateway.
	ServiceTag = "atoll.io/service"
	// ProtocolTag names the protocol of an inbound (tcp, http, http2, grpc).
	ProtocolTag = "atoll.io/protocol"

	OriginZone   = "zone"
	OriginGlobal = "global"

	// DefaultMesh exists out of the box on every control plane.
	DefaultMesh = "default"
)

// Key identifies a stored resource. Mesh is empty for global-scoped types.
type Key struct {
	Type Type
	Mesh string
	Name string
}

func (k Key) String() string {
	if k.Mesh == "" {
		return fmt.Sprintf("%s %q", k.Type, k.Name)
	}
	return fmt.Sprintf("%s %q in mesh %q", k.Type, k.Name, k.Mesh)
}

// Meta is what every resource carries besides its spec.
type Meta struct {
	Type   Type
	Mesh   string
	Name   string
	Labels map[string]string
	// Version is the store's revision of the resource: opaque, changes on
	// every write, and used for optimistic concurrency on update.
	Version          string
	CreationTime     time.Time
	ModificationTime time.Time
}

// Key returns the resource's key.
func (m Meta) Key() Key { return Key{Type: m.Type, Mesh: m.Mesh, Name: m.Name} }

// Resource is one typed object: meta plus a spec message of the type's
// registered kind.
type Resource struct {
	Meta Meta
	Spec proto.Message
}

// Key returns the resource's key.
func (r *Resource) Key() Key { return r.Meta.Key() }

// Clone returns a deep copy.
func (r *Resource) Clone() *Resource {
	c := &Resource{Meta: r.Meta}
	if r.Meta.Labels != nil {
		c.Meta.Labels = make(map[string]string, len(r.Meta.Labels))
		for k, v := range r.Meta.Labels {
			c.Meta.Labels[k] = v
		}
	}
	if r.Spec != nil {
		c.Spec = proto.Clone(r.Spec)
	}
	return c
}
