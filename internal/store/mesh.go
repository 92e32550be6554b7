package store

import (
	"context"
	"fmt"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
)

// EnsureMesh creates mesh name, labelled with its origin, unless it exists.
func EnsureMesh(ctx context.Context, w Writer, name, origin string) error {
	_, err := w.Create(ctx, &resource.Resource{
		Meta: resource.Meta{
			Type: resource.MeshType, Name: name,
			Labels: map[string]string{resource.OriginLabel: origin},
		},
		Spec: &v1alpha1.Mesh{},
	})
	if err != nil && !IsAlreadyExists(err) {
		return fmt.Errorf("creating mesh %q: %w", name, err)
	}
	return nil
}
