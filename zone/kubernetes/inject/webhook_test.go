package inject

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// TestWebhookManifestMatches keeps the manifest users apply equal to
// WebhookConfiguration.
func TestWebhookManifestMatches(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "atoll", "files", "injector", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &got); err != nil {
		t.Fatalf("the manifest does not decode: %v", err)
	}
	path, port := Path, int32(5443)
	want := WebhookConfiguration(DefaultWebhookName, admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{Name: "atoll-zone", Namespace: "atoll-system", Path: &path, Port: &port}})
	want.APIVersion, want.Kind = "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("manifest = %+v\nwant       %+v", got, *want)
	}
}
