package resource

import "github.com/atoll-mesh/atoll/api/v1alpha1"

// Normalize clears spec fields set to what their absence means, so that
// two specs that mean the same compare equal and a resource read back
// (atollctl get -o yaml) applies unchanged: a Zone's enabled: true is its
// default.
func Normalize(r *Resource) {
	if z, ok := r.Spec.(*v1alpha1.Zone); ok && z.Enabled != nil && *z.Enabled {
		z.Enabled = nil
	}
}
