package chart

import (
	"strings"
	"testing"
)

// TestSchemaRefuses renders values the chart must refuse and checks helm's
// message names what is wrong. Each case starts from a mode's values file.
func TestSchemaRefuses(t *testing.T) {
	cases := []struct {
		name string
		mode string // values file the case changes; "" for none
		set  []string
		want string
	}{
		{"no mode", "", nil, "at '/mode': value must be one of 'global', 'zone'"},
		{"unknown mode", "", []string{"mode=cluster"}, "at '/mode': value must be one of 'global', 'zone'"},
		{"zone without a name", "zone", []string{"zone.name="}, "at '/zone/name': '' does not match pattern"},
		{"zone name not a DNS label", "zone", []string{"zone.name=Zone_1"}, "at '/zone/name': 'Zone_1' does not match pattern"},
		{"zone without the global's address", "zone", []string{"global.address="}, "at '/global/address': '' does not match pattern '^grpcs://"},
		{"global address not grpcs", "zone", []string{"global.address=grpc://global.example.com:5685"}, "at '/global/address': 'grpc://global.example.com:5685' does not match pattern '^grpcs://"},
		{"global address without a port", "zone", []string{"global.address=grpcs://global.example.com"}, "at '/global/address': 'grpcs://global.example.com' does not match pattern"},
		{"zone without a token", "zone", []string{"zone.token.existingSecret.name="}, "at '/zone/token/existingSecret/name': minLength: got 0, want 1"},
		{"zero replicas", "zone", []string{"replicas=0"}, "at '/replicas': minimum: got 0, want 1"},
		{"replicas not a number", "zone", []string{"replicas=two"}, "at '/replicas': got string, want integer"},
		{"zone xDS TLS with two replicas and no shared certificate", "zone", []string{"zone.xds.tls=true"}, "at '/zone/xds/tlsSecret': minLength: got 0, want 1"},
		{"zone xDS TLS with three replicas and no shared certificate", "zone", []string{"zone.xds.tls=true", "replicas=3"}, "at '/zone/xds/tlsSecret': minLength: got 0, want 1"},
		{"zone xDS certificate Secret without TLS", "zone", []string{"zone.xds.tlsSecret=zone-1-xds"}, "at '/zone/xds/tls': value must be true"},
		{"zone xDS certificate Secret not a string", "zone", []string{"zone.xds.tls=true", "zone.xds.tlsSecret[0]=zone-1-xds"}, "at '/zone/xds/tlsSecret': got array, want string"},
		{"global with embedded etcd and two replicas", "global", []string{"replicas=2"}, "at '/replicas': maximum: got 2, want 1"},
		{"global replicas without a shared KDS certificate", "global", []string{"replicas=2", "global.etcd.mode=external", "global.etcd.endpoints[0]=https://etcd:2379"}, "at '/global/kds/tls/secretName': minLength: got 0, want 1"},
		{"external etcd without endpoints", "global", []string{"global.etcd.mode=external"}, "at '/global/etcd/endpoints': minItems: got 0, want 1"},
		{"etcd endpoint without a scheme", "global", []string{"global.etcd.mode=external", "global.etcd.endpoints[0]=etcd:2379"}, "at '/global/etcd/endpoints/0': 'etcd:2379' does not match pattern"},
		{"unknown etcd mode", "global", []string{"global.etcd.mode=sidecar"}, "at '/global/etcd/mode': value must be one of 'embedded', 'external'"},
		{"unknown KDS Service type", "global", []string{"global.kds.kds=1"}, "at '/global/kds': additional properties 'kds' not allowed"},
		{"bad KDS Service type", "global", []string{"global.kds.service.type=ExternalName"}, "at '/global/kds/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"},
		{"node port out of range", "global", []string{"global.kds.service.nodePort=80"}, "at '/global/kds/service/nodePort'"},
		{"unknown top-level key", "global", []string{"replicaCount=2"}, "at '': additional properties 'replicaCount' not allowed"},
		{"unknown zone key", "zone", []string{"zone.zoneName=zone-1"}, "at '/zone': additional properties 'zoneName' not allowed"},
		{"port out of range", "zone", []string{"api.port=70000"}, "at '/api/port': maximum: got 70,000, want 65,535"},
		{"unknown API TLS choice", "zone", []string{"api.tls=off"}, "at '/api/tls': value must be one of 'generated', 'secret', 'insecure'"},
		{"API TLS secret without a name", "zone", []string{"api.tls=secret"}, "at '/api/tlsSecretName': minLength: got 0, want 1"},
		{"bad log level", "zone", []string{"log.level=verbose"}, "at '/log/level': value must be one of 'debug', 'info', 'warn', 'error'"},
		{"bad pull policy", "zone", []string{"image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
		{"extra argument not a flag", "zone", []string{"extraArgs[0]=zone"}, "at '/extraArgs/0': 'zone' does not match pattern"},
		// Refused by the chart's templates (templates/checks.yaml).
		{"token given twice", "zone", []string{"zone.token.value=abc"}, "zone.token: give existingSecret.name or value, not both"},
		{"two CAs", "zone", []string{"global.ca.existingConfigMap.name=kds-ca"}, "global.ca: give at most one of existingSecret.name, existingConfigMap.name and value"},
	}
	helm := helmPath(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var files []string
			if c.mode != "" {
				files = append(files, valuesFile(c.mode))
			}
			var flags []string
			for _, s := range c.set {
				flags = append(flags, "--set", s)
			}
			out, err := Template(helm, files, flags...)
			if err == nil {
				t.Fatalf("helm template accepted %v:\n%.400s", c.set, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("helm refused %v, but its message lacks %q:\n%v", c.set, c.want, err)
			}
		})
	}
}

// TestChecksRefuseWithoutTheSchema: what the schema refuses about the xDS
// certificate, templates/checks.yaml refuses too, with a message saying
// what to do, when helm skips the schema.
func TestChecksRefuseWithoutTheSchema(t *testing.T) {
	helm := helmPath(t)
	for _, c := range []struct {
		name string
		set  []string
		want string
	}{
		{"xDS TLS with two replicas and no shared certificate", []string{"zone.xds.tls=true"},
			"zone.xds.tls with replicas 2: each replica would generate its own xDS CA and sidecars would fail against the others: set zone.xds.tlsSecret"},
		{"xDS certificate Secret without TLS", []string{"zone.xds.tlsSecret=zone-1-xds"}, "zone.xds.tlsSecret: an xDS certificate, but zone.xds.tls is false: set zone.xds.tls=true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			flags := []string{"--skip-schema-validation"}
			for _, s := range c.set {
				flags = append(flags, "--set", s)
			}
			out, err := Template(helm, []string{valuesFile("zone")}, flags...)
			if err == nil {
				t.Fatalf("helm template accepted %v:\n%.400s", c.set, out)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("helm refused %v, but its message lacks %q:\n%v", c.set, c.want, err)
			}
		})
	}
}
