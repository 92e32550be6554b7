package resource

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
)

// Scope says whether a type lives inside a mesh or beside meshes.
type Scope int

const (
	// ScopeMesh types belong to one mesh (Dataplane, ZoneIngress summaries).
	ScopeMesh Scope = iota
	// ScopeGlobal types have no mesh (Mesh, Zone).
	ScopeGlobal
)

// Direction says which way KDS carries a type.
type Direction int

const (
	// SyncNone: the type never leaves the control plane that holds it.
	SyncNone Direction = iota
	// SyncZoneToGlobal: zones send it to the global, which stores it.
	SyncZoneToGlobal
	// SyncGlobalToZones: the global sends it to every zone.
	SyncGlobalToZones
	// SyncRelayToOtherZones: zones send it to the global, which relays each
	// zone's copy to every other enabled zone.
	SyncRelayToOtherZones
)

func (d Direction) String() string {
	switch d {
	case SyncZoneToGlobal:
		return "zone-to-global"
	case SyncGlobalToZones:
		return "global-to-zones"
	case SyncRelayToOtherZones:
		return "relay-to-other-zones"
	default:
		return "none"
	}
}

// Writer says which control plane's API accepts writes of a type from users.
type Writer int

const (
	// WrittenBySystem: computed by atoll; users only read it.
	WrittenBySystem Writer = iota
	// WrittenOnGlobal: users write it on the global's API.
	WrittenOnGlobal
	// WrittenOnZone: users write it on a zone's API (universal mode).
	WrittenOnZone
)

// Descriptor declares one resource type once, for every piece of atoll.
type Descriptor struct {
	Type Type
	// Singular and Plural are the lowercase names used in URLs and atollctl.
	Singular string
	Plural   string
	Scope    Scope
	Sync     Direction
	Writer   Writer
	// New returns an empty spec message of the type.
	New func() proto.Message
	// validate checks a spec; nil means any spec of the right kind is valid.
	validate func(r *Resource, v *violations)
}

// Registry maps type names to descriptors.
type Registry struct {
	byType   map[Type]*Descriptor
	byPlural map[string]*Descriptor
}

// NewRegistry returns a registry of the given descriptors. It panics on a
// duplicate, which is a programming error.
func NewRegistry(ds ...*Descriptor) *Registry {
	r := &Registry{byType: map[Type]*Descriptor{}, byPlural: map[string]*Descriptor{}}
	for _, d := range ds {
		if _, dup := r.byType[d.Type]; dup {
			panic(fmt.Sprintf("resource type %s registered twice", d.Type))
		}
		r.byType[d.Type] = d
		r.byPlural[d.Plural] = d
		r.byPlural[d.Singular] = d
	}
	return r
}

// Get returns the descriptor of t.
func (r *Registry) Get(t Type) (*Descriptor, error) {
	d, ok := r.byType[t]
	if !ok {
		return nil, fmt.Errorf("unknown resource type %q: use one of %s", t, strings.Join(r.typeNames(), ", "))
	}
	return d, nil
}

// ByName returns the descriptor for a URL or CLI name: "dataplanes",
// "dataplane", or the type name itself, case-insensitive.
func (r *Registry) ByName(name string) (*Descriptor, bool) {
	n := strings.ToLower(name)
	if d, ok := r.byPlural[n]; ok {
		return d, true
	}
	for t, d := range r.byType {
		if strings.EqualFold(string(t), name) {
			return d, true
		}
	}
	return nil, false
}

// All returns every descriptor, sorted by type name.
func (r *Registry) All() []*Descriptor {
	out := make([]*Descriptor, 0, len(r.byType))
	for _, d := range r.byType {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

func (r *Registry) typeNames() []string {
	var names []string
	for _, d := range r.All() {
		names = append(names, string(d.Type))
	}
	return names
}

// Types is the registry of atoll's built-in types.
var Types = NewRegistry(
	&Descriptor{
		Type: MeshType, Singular: "mesh", Plural: "meshes",
		Scope: ScopeGlobal, Sync: SyncGlobalToZones, Writer: WrittenOnGlobal,
		New: func() proto.Message { return &v1alpha1.Mesh{} },
	},
	&Descriptor{
		Type: DataplaneType, Singular: "dataplane", Plural: "dataplanes",
		Scope: ScopeMesh, Sync: SyncZoneToGlobal, Writer: WrittenOnZone,
		New:      func() proto.Message { return &v1alpha1.Dataplane{} },
		validate: validateDataplane,
	},
	&Descriptor{
		Type: ZoneIngressType, Singular: "zoneingress", Plural: "zoneingresses",
		Scope: ScopeGlobal, Sync: SyncRelayToOtherZones, Writer: WrittenBySystem,
		New:      func() proto.Message { return &v1alpha1.ZoneIngress{} },
		validate: validateZoneIngress,
	},
	&Descriptor{
		Type: ZoneType, Singular: "zone", Plural: "zones",
		Scope: ScopeGlobal, Sync: SyncNone, Writer: WrittenOnGlobal,
		New: func() proto.Message { return &v1alpha1.Zone{} },
	},
	&Descriptor{
		// One per mesh, allocated by the global, sent to every zone.
		Type: VIPTableType, Singular: "viptable", Plural: "viptables",
		Scope: ScopeMesh, Sync: SyncGlobalToZones, Writer: WrittenBySystem,
		New:      func() proto.Message { return &v1alpha1.VIPTable{} },
		validate: validateVIPTable,
	},
	&Descriptor{
		// Derived by the global from a zone's Dataplanes (never stored
		// there) and sent to the other zones, for Direct cross-zone meshes.
		Type: ServiceEndpointsType, Singular: "serviceendpoints", Plural: "serviceendpoints",
		Scope: ScopeMesh, Sync: SyncGlobalToZones, Writer: WrittenBySystem,
		New:      func() proto.Message { return &v1alpha1.ServiceEndpoints{} },
		validate: validateServiceEndpoints,
	},
	&Descriptor{
		// The global derives insights from its KDS sessions; they are not
		// sent by zones as resources.
		Type: ZoneInsightType, Singular: "zoneinsight", Plural: "zoneinsights",
		Scope: ScopeGlobal, Sync: SyncNone, Writer: WrittenBySystem,
		New: func() proto.Message { return &v1alpha1.ZoneInsight{} },
	},
)
