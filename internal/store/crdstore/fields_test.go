package crdstore_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
)

// full returns resources of every registered type that together set every
// field of every spec.
func full() []*resource.Resource {
	ts := timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC))
	tags := map[string]string{resource.ServiceTag: "backend", resource.ProtocolTag: "http"}
	return []*resource.Resource{
		{Meta: resource.Meta{Type: resource.MeshType, Name: "m"}, Spec: &v1alpha1.Mesh{
			CrossZone: &v1alpha1.Mesh_CrossZone{Mode: v1alpha1.Mesh_CrossZone_Direct}}},
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "m", Name: "workload"}, Spec: &v1alpha1.Dataplane{
			Networking: &v1alpha1.Dataplane_Networking{
				Address: "10.0.0.1", AdvertisedAddress: "192.0.2.1",
				Inbound: []*v1alpha1.Dataplane_Networking_Inbound{{
					Port: 8080, ServicePort: 80, Address: "10.0.0.2", Tags: tags,
					Health: &v1alpha1.Health{Ready: true},
				}},
			}}},
		{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: "m", Name: "gateway"}, Spec: &v1alpha1.Dataplane{
			Networking: &v1alpha1.Dataplane_Networking{
				Address: "10.0.0.3", AdvertisedAddress: "192.0.2.3",
				Gateway: &v1alpha1.Dataplane_Networking_Gateway{Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED, Tags: tags},
			}}},
		{Meta: resource.Meta{Type: resource.ZoneIngressType, Name: "zone-1"}, Spec: &v1alpha1.ZoneIngress{
			Zone: "zone-1",
			Networking: &v1alpha1.ZoneIngress_Networking{
				Address: "10.0.0.4", Port: 10001, AdvertisedAddress: "192.0.2.4", AdvertisedPort: 30001},
			AvailableServices: []*v1alpha1.ZoneIngress_AvailableService{{Mesh: "m", Tags: tags, Instances: 3, Port: 8080}},
		}},
		{Meta: resource.Meta{Type: resource.ZoneType, Name: "zone-1"}, Spec: &v1alpha1.Zone{Enabled: proto.Bool(false)}},
		{Meta: resource.Meta{Type: resource.ZoneInsightType, Name: "zone-1"}, Spec: &v1alpha1.ZoneInsight{
			Subscriptions: []*v1alpha1.KDSSubscription{{
				Id: "s1", GlobalInstanceId: "g1", ConnectTime: ts, DisconnectTime: ts, LastSeen: ts,
				Stats: map[string]*v1alpha1.KDSSubscription_TypeStats{"Dataplane": {
					Sent: 1 << 40, Acked: 2, Nacked: 3, Received: 4, LastAckedVersion: "v9"}},
				ZoneVersion: "1.2.3", SyncLagMs: 42,
			}},
		}},
		{Meta: resource.Meta{Type: resource.VIPTableType, Mesh: "m", Name: resource.VIPTableName}, Spec: &v1alpha1.VIPTable{
			Entries: []*v1alpha1.VIPTable_Entry{{Service: "backend", Vip: "240.0.0.1", UnusedSince: ts, Vip6: "fd00::1"}}}},
		{Meta: resource.Meta{Type: resource.ServiceEndpointsType, Mesh: "m", Name: "backend-zone-1"}, Spec: &v1alpha1.ServiceEndpoints{
			Zone: "zone-1", Service: "backend",
			Endpoints: []*v1alpha1.ServiceEndpoints_Endpoint{{Address: "10.0.0.5", Port: 8080, Tags: tags}}}},
	}
}

// fieldPaths lists every field path of d, recursively.
func fieldPaths(prefix string, d protoreflect.MessageDescriptor, out map[string]bool) {
	if d.FullName() == "google.protobuf.Timestamp" {
		return
	}
	fds := d.Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		p := prefix + "." + string(fd.Name())
		out[p] = true
		switch {
		case fd.IsMap():
			if md := fd.MapValue().Message(); md != nil {
				fieldPaths(p, md, out)
			}
		case fd.Message() != nil:
			fieldPaths(p, fd.Message(), out)
		}
	}
}

// setPaths records the field paths m sets, recursively.
func setPaths(prefix string, m protoreflect.Message, out map[string]bool) {
	if m.Descriptor().FullName() == "google.protobuf.Timestamp" {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := prefix + "." + string(fd.Name())
		out[p] = true
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				setPaths(p, v.List().Get(i).Message(), out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				setPaths(p, mv.Message(), out)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			setPaths(p, v.Message(), out)
		}
		return true
	})
}

// Every field of every type survives the API server: none is pruned by a
// schema that forgot it, none changes its form.
func everyFieldSurvivesTheSchema(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "fields"})
	set := map[string]bool{}
	for _, r := range full() {
		setPaths(string(r.Meta.Type), r.Spec.ProtoReflect(), set)
		if err := resource.Validate(r); err != nil {
			t.Errorf("fixture: %v", err)
		}
		if _, err := s.Create(ctx, r); err != nil {
			t.Errorf("Create: %v", err)
			continue
		}
		got, err := s.Get(ctx, r.Key())
		if err != nil {
			t.Errorf("Get: %v", err)
			continue
		}
		if !proto.Equal(got.Spec, r.Spec) {
			t.Errorf("%s came back as\n%v\nwant\n%v", r.Key(), got.Spec, r.Spec)
		}
	}
	// A field added to a spec must be set in full() and declared in the
	// CRD's schema, which would otherwise drop it without a word
	// (structural schemas prune unknown fields).
	all := map[string]bool{}
	for _, d := range resource.Types.All() {
		fieldPaths(string(d.Type), d.New().ProtoReflect().Descriptor(), all)
	}
	for p := range all {
		if !set[p] {
			t.Errorf("%s is set by no resource of full(): set it there and check charts/atoll/crds declares it", p)
		}
	}
}
