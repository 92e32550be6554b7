package crdstore_test

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/internal/store/storetest"
)

func gateway() *v1alpha1.Dataplane_Networking_Gateway {
	return &v1alpha1.Dataplane_Networking_Gateway{
		Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED,
		Tags: map[string]string{resource.ServiceTag: "kong_kong_svc_80"},
	}
}

// The CRDs' schemas refuse, at the API server, Dataplanes that atoll's own
// validation refuses: the store writes what it is given, so what reaches
// the API server unchecked (kubectl apply, a bug) meets the same bounds.
func schemaRefusesInvalidDataplanes(t *testing.T, c *cluster) {
	ctx := context.Background()
	s := c.store(t, crdstore.Config{Namespace: "schema"})
	for _, tc := range []struct {
		name   string
		mutate func(n *v1alpha1.Dataplane_Networking)
		want   string // in the API server's answer
	}{
		{"port over 65535", func(n *v1alpha1.Dataplane_Networking) { n.Inbound[0].Port = 70000 },
			"spec.networking.inbound[0].port: Invalid value: 70000"},
		{"port 0", func(n *v1alpha1.Dataplane_Networking) { n.Inbound[0].Port = 0 },
			"spec.networking.inbound[0].port: Required value"},
		{"service port over 65535", func(n *v1alpha1.Dataplane_Networking) { n.Inbound[0].ServicePort = 65536 },
			"spec.networking.inbound[0].servicePort: Invalid value: 65536"},
		{"no address", func(n *v1alpha1.Dataplane_Networking) { n.Address = "" },
			"spec.networking.address: Required value"},
		{"neither inbound nor gateway", func(n *v1alpha1.Dataplane_Networking) { n.Inbound = nil },
			"a Dataplane needs at least one inbound, or a gateway"},
		{"gateway with inbounds", func(n *v1alpha1.Dataplane_Networking) { n.Gateway = gateway() },
			"a DELEGATED gateway may have no inbounds"},
		{"gateway type unspecified", func(n *v1alpha1.Dataplane_Networking) {
			n.Inbound, n.Gateway = nil, gateway()
			n.Gateway.Type = v1alpha1.Dataplane_Networking_Gateway_TYPE_UNSPECIFIED
		}, "spec.networking.gateway.type: Required value"},
		{"inbound without service tag", func(n *v1alpha1.Dataplane_Networking) { n.Inbound[0].Tags = map[string]string{"app": "x"} },
			"spec.networking.inbound[0]: Invalid value: tags must name the service"},
		{"gateway without service tag", func(n *v1alpha1.Dataplane_Networking) {
			n.Inbound, n.Gateway = nil, gateway()
			n.Gateway.Tags = map[string]string{"app": "kong"}
		}, "spec.networking.gateway: Invalid value: tags must name the service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := storetest.Dataplane("default", "dp-1", 8080)
			tc.mutate(r.Spec.(*v1alpha1.Dataplane).Networking)
			if err := resource.Validate(r); err == nil {
				t.Fatal("atoll's validation accepts this Dataplane: the case tests nothing")
			}
			_, err := s.Create(ctx, r)
			if err == nil {
				t.Fatal("the API server stored an invalid Dataplane")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "schema") {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}

	t.Run("a valid gateway is stored", func(t *testing.T) {
		r := storetest.Dataplane("default", "kong-0", 8080)
		n := r.Spec.(*v1alpha1.Dataplane).Networking
		n.Inbound, n.Gateway = nil, gateway()
		if err := resource.Validate(r); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, r); err != nil {
			t.Fatalf("Create: %v", err)
		}
	})

	t.Run("an unknown cross-zone mode is refused", func(t *testing.T) {
		gvr, _ := crdstore.GVR(resource.MeshType)
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": crdstore.Group + "/" + crdstore.Version, "kind": "Mesh",
			"metadata": map[string]any{"name": "sideways", "labels": map[string]any{crdstore.HomeLabel: "schema"}},
			"spec":     map[string]any{"crossZone": map[string]any{"mode": "Sideways"}},
		}}
		_, err := c.dyn.Resource(gvr).Namespace("schema").Create(ctx, obj, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `spec.crossZone.mode: Unsupported value: "Sideways"`) {
			t.Fatalf("got %v, want the mode refused", err)
		}
	})
}
