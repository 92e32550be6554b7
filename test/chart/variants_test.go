package chart

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// variant is a rendering the tests check beyond the golden files: a mode's
// values file with further settings, so optional parts (external etcd,
// Secrets, xDS TLS...) are applied and their flags checked too.
type variant struct {
	name string
	mode string
	set  []string
}

var variants = []variant{
	{name: "global", mode: "global"},
	{name: "zone", mode: "zone"},
	{name: "global-external-etcd", mode: "global", set: []string{
		"replicas=2",
		"global.etcd.mode=external",
		"global.etcd.endpoints[0]=https://etcd-0.etcd:2379",
		"global.etcd.endpoints[1]=https://etcd-1.etcd:2379",
		"global.etcd.tlsSecretName=etcd-client",
		"global.kds.tls.secretName=kds-tls",
		"global.kds.service.type=NodePort",
		"global.kds.service.nodePort=30685",
		"api.tls=secret",
		"api.tlsSecretName=api-tls",
		"api.tokenSecret.name=api-token",
		"podDisruptionBudget.enabled=true",
		"extraArgs[0]=--withdraw-offline-after=10m",
	}},
	{name: "zone-options", mode: "zone", set: []string{
		"replicas=1",
		"podDisruptionBudget.enabled=false",
		"zone.xds.tls=true",
		"zone.token.existingSecret.name=",
		"zone.token.value=zone-token-value",
		"global.ca.value=",
		"global.ca.existingSecret.name=kds-ca",
		"zone.ingress.advertisedAddress=203.0.113.7",
		"zone.ingress.advertisedPort=10001",
		"zone.injector.nativeSidecar=false",
		"api.tls=insecure",
		"extraArgs[0]=--xds-debounce=30ms",
	}},
	{name: "zone-without-injector", mode: "zone", set: []string{
		"zone.injector.enabled=false",
		"global.ca.value=",
		"global.ca.existingConfigMap.name=kds-ca",
	}},
	{name: "zone-xds-tls-secret", mode: "zone", set: []string{
		"replicas=3",
		"zone.xds.tls=true",
		"zone.xds.tlsSecret=zone-1-xds-tls",
	}},
}

// objects renders v and decodes it.
func (v variant) objects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var flags []string
	for _, s := range v.set {
		flags = append(flags, "--set", s)
	}
	objs, err := Objects(render(t, v.mode, flags...))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s renders no object", v.name)
	}
	return objs
}
