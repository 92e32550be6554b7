package main

import (
	"bytes"
	"testing"
)

// TestArgumentErrors runs commands with arguments missing or extra and
// checks that the error names the argument and shows the command line that
// works. Arguments are checked before any request: no API is needed.
func TestArgumentErrors(t *testing.T) {
	types := "dataplanes, meshes, serviceendpoints, viptables, zones, zoneingresses, zoneinsights, services, vips, proxies, zone-token-keys"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"delete", "dataplane"}, "missing the Dataplane's name: atollctl delete dataplane NAME [--mesh MESH]"},
		{[]string{"delete", "dp"}, "missing the Dataplane's name: atollctl delete dataplane NAME [--mesh MESH]"},
		{[]string{"delete", "zone"}, "missing the Zone's name: atollctl delete zone NAME"},
		{[]string{"delete"}, "missing the resource type and name: atollctl delete TYPE NAME [--mesh MESH], where TYPE is one of dataplanes, meshes, zones"},
		{[]string{"delete", "dataplane", "a", "b"}, "too many arguments (b): atollctl delete dataplane NAME [--mesh MESH] deletes one Dataplane"},
		{[]string{"get"}, "missing the resource type: atollctl get TYPE [NAME] [--mesh MESH] [-o table|json|yaml], where TYPE is one of " + types},
		{[]string{"get", "dataplanes", "a", "b", "c"}, "too many arguments (b c): atollctl get TYPE [NAME] [--mesh MESH] [-o table|json|yaml] shows every resource of a type, or the one named"},
		{[]string{"inspect"}, "missing what to inspect: atollctl inspect dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [-o table|json], or atollctl inspect ingress ZONE [-o table|json]"},
		{[]string{"inspect", "dataplane"}, "missing the Dataplane's name: atollctl inspect dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [-o table|json], or atollctl inspect ingress ZONE [-o table|json]"},
		{[]string{"inspect", "ingress"}, "missing the ingress's zone: atollctl inspect dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [-o table|json], or atollctl inspect ingress ZONE [-o table|json]"},
		{[]string{"inspect", "zone", "zone-1"}, `cannot inspect "zone": a Dataplane's proxy or a zone's ingress is shown: atollctl inspect dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [-o table|json], or atollctl inspect ingress ZONE [-o table|json]`},
		{[]string{"bootstrap", "dataplane"}, "missing the Dataplane's name: atollctl bootstrap dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [--xds HOST:PORT]"},
		{[]string{"bootstrap", "ingress"}, "missing the zone whose ingress to bootstrap: atollctl bootstrap ingress ZONE [--xds HOST:PORT]"},
		{[]string{"bootstrap"}, "missing what to bootstrap: atollctl bootstrap dataplane NAME [--mesh MESH] [--kind envoy|proxyless] [--xds HOST:PORT], or atollctl bootstrap ingress ZONE [--xds HOST:PORT]"},
		{[]string{"apply", "dataplane.yaml"}, `unexpected argument "dataplane.yaml": give files with -f: atollctl apply -f FILE (or -f - for standard input)`},
		{[]string{"generate", "zone-token", "zone-1"}, `unexpected argument "zone-1": name the zone with --zone: atollctl generate zone-token --zone ZONE [--valid-for DURATION]`},
		{[]string{"revoke", "zone-token", "zone-1"}, `unexpected argument "zone-1": name the zone with --zone: atollctl revoke zone-token --zone ZONE`},
		{[]string{"retire", "zone-token-key"}, "missing the ID of the key to retire: atollctl retire zone-token-key ID (atollctl get zone-token-keys lists them)"},
		{[]string{"generate", "zone-tokn"}, `unknown command "zone-tokn"; did you mean "zone-token"? atollctl generate zone-token --zone NAME [--valid-for DURATION]`},
		{[]string{"retire", "key"}, `unknown command "key": use atollctl retire zone-token-key ID`},
		{[]string{"config", "use-contxt", "zone-1"}, `unknown command "use-contxt"; did you mean "use-context"? atollctl config use-context NAME`},
		{[]string{"config", "list"}, `unknown command "list": use atollctl config current-context, or atollctl config delete-context NAME, or atollctl config get-contexts, or atollctl config set-context NAME --api-url URL [--api-ca-file FILE] [--api-token-file FILE], or atollctl config use-context NAME`},
		{[]string{"config", "current-context", "zone-1"}, `unexpected argument "zone-1": atollctl config current-context takes no arguments; switch with atollctl config use-context NAME`},
		{[]string{"accept-global"}, "missing the cluster identity to accept: atollctl accept-global CLUSTER_ID (atollctl status shows the one refused)"},
		{[]string{"accept-global", "a", "b"}, "too many arguments (b): atollctl accept-global CLUSTER_ID (atollctl status shows the one refused)"},
	}
	for _, tt := range tests {
		root := rootCommand()
		root.SetArgs(append([]string{"--api-url", "http://127.0.0.1:1"}, tt.args...))
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		if err == nil || err.Error() != tt.want {
			t.Errorf("atollctl %v:\n got %v\nwant %s", tt.args, err, tt.want)
		}
	}
}
