package global

import (
	"context"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/kds"
)

var _ kds.KeyedEndpoint = (*zoneEndpoint)(nil)

// DesiredKeys computes the ServiceEndpoints of a few groups from the
// endpoint index, so that one Dataplane change in a Direct mesh costs each
// session the groups it touched, not every group of every zone. Other
// types are compared whole.
func (e *zoneEndpoint) DesiredKeys(_ context.Context, t resource.Type, keys []string) (map[string]*v1alpha1.WireResource, error) {
	if t != resource.ServiceEndpointsType {
		return nil, kds.ErrFullCompare
	}
	return e.endpoints.desiredKeys(e.zone, e.directMeshes(), e.disabledZones(), keys)
}
