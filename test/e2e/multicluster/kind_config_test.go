package multicluster

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/atoll-mesh/atoll/test/chart"
	"github.com/atoll-mesh/atoll/test/helmbin"
)

// The kind provider's pieces that need no container engine (its
// constants, kind configuration, helm values and the CoreDNS stanza it
// takes from the chart's notes), built without the kind tag so that
// `go test ./...` checks them against the chart on every run.

// What the kind provider sets up in every cluster. The node ports are
// fixed (each cluster has a node of its own); the host ports they are
// mapped to are picked free when the cluster is created.
const (
	// kindAPINodePort is the NodePort Service atoll-e2e-api gives the
	// control plane's API (the chart's API Service is a ClusterIP).
	kindAPINodePort = 30681
	// kindKDSNodePort is the global's KDS Service (the chart's, type
	// NodePort), which zones dial on the global node's address.
	kindKDSNodePort = 30685
	// kindDNSNodePort is the NodePort Service atoll-e2e-dns on the
	// cluster's CoreDNS pods, UDP and TCP, for the test's DNS questions.
	kindDNSNodePort = 30053
	// kindZoneDNSClusterIP is the zone's DNS Service address
	// (zone.dns.clusterIP), in kind's Service range 10.96.0.0/16 and its
	// static band, so that the chart's notes print the complete stanza.
	kindZoneDNSClusterIP = "10.96.0.53"
	// kindAPITokenSecret holds the API token the provider sends
	// (api.tokenSecret): requests through a NodePort do not come from
	// loopback.
	kindAPITokenSecret = "atoll-e2e-api-token"
)

// kindConfig is the kind configuration of a cluster: one node, its pod
// subnet (distinct per cluster, so that nodes can route to each other's
// pods), the API NodePort mapped to the host's loopback port apiPort and,
// unless dnsPort is "", the DNS NodePort to dnsPort (UDP and TCP).
func kindConfig(podSubnet, apiPort, dnsPort string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: %q
  serviceSubnet: "10.96.0.0/16"
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: %d
    hostPort: %s
    listenAddress: "127.0.0.1"
    protocol: TCP
`, podSubnet, kindAPINodePort, apiPort)
	if dnsPort != "" {
		for _, proto := range []string{"UDP", "TCP"} {
			fmt.Fprintf(&b, `  - containerPort: %d
    hostPort: %s
    listenAddress: "127.0.0.1"
    protocol: %s
`, kindDNSNodePort, dnsPort, proto)
		}
	}
	return b.String()
}

// globalValues are the helm flags of the global at nodeIP: the API in
// plaintext with a token from a Secret, KDS on a NodePort with a
// certificate covering nodeIP.
func globalValues(tag, nodeIP string) []string {
	return []string{
		"--set", "mode=global",
		"--set", "image.tag=" + tag,
		"--set", "api.tls=insecure",
		"--set", "api.tokenSecret.name=" + kindAPITokenSecret,
		"--set", "global.kds.service.type=NodePort",
		"--set", "global.kds.service.nodePort=" + strconv.Itoa(kindKDSNodePort),
		"--set", "global.kds.tlsSANs={" + nodeIP + "}",
		"--set", "global.storage.size=1Gi",
	}
}

// zoneValues are the helm flags of zone: the global's address, KDS CA
// (a file) and a token it issued; the images of tag; the API as for the
// global; the DNS Service at a fixed address with the CoreDNS stanza in
// the notes.
func zoneValues(tag, zone, globalAddress, caFile, token string) []string {
	return []string{
		"--set", "mode=zone",
		"--set", "replicas=1",
		"--set", "zone.name=" + zone,
		"--set", "global.address=" + globalAddress,
		"--set-file", "global.ca.value=" + caFile,
		"--set-string", "zone.token.value=" + token,
		"--set", "image.tag=" + tag,
		"--set", "zone.injector.initImage.tag=" + tag,
		"--set", "zone.injector.sidecarImage.tag=" + tag,
		"--set", "api.tls=insecure",
		"--set", "api.tokenSecret.name=" + kindAPITokenSecret,
		"--set", "zone.dns.clusterIP=" + kindZoneDNSClusterIP,
		"--set", "zone.dns.coreDNSSnippet=true",
	}
}

// stanzaStart is the first line of a CoreDNS server block on port 53.
var stanzaStart = regexp.MustCompile(`^[a-z0-9.-]+:53 \{$`)

// coreDNSStanza is the server block for the mesh domain in a zone
// release's notes.
func coreDNSStanza(notes string) (string, error) {
	var lines []string
	for _, line := range strings.Split(notes, "\n") {
		switch {
		case lines == nil && stanzaStart.MatchString(strings.TrimSpace(line)):
			lines = []string{strings.TrimSpace(line)}
		case lines != nil:
			lines = append(lines, strings.TrimRight(line, " "))
			if strings.TrimSpace(line) == "}" {
				stanza := strings.Join(lines, "\n")
				if strings.Contains(stanza, "CLUSTER_IP") {
					return "", fmt.Errorf("the zone release's CoreDNS stanza names no address (set zone.dns.clusterIP):\n%s", stanza)
				}
				return stanza, nil
			}
		}
	}
	return "", fmt.Errorf("the zone release's notes hold no CoreDNS stanza (zone.dns.coreDNSSnippet=true prints one):\n%s", notes)
}

// TestKindChartValues renders the chart with the provider's global and
// zone values and checks what the provider counts on: the flags, the
// images, the KDS NodePort, the DNS Service's address and the pod labels
// and port name its NodePort Service atoll-e2e-api selects.
func TestKindChartValues(t *testing.T) {
	helm, err := helmbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "kds-ca.pem")
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		component string
		values    []string
		kind      string
		args      []string
		images    []string
	}{
		{"global", globalValues("e2e1", "172.18.0.2"), "StatefulSet",
			[]string{"--kds-tls-san=172.18.0.2", "--api-insecure", "--api-token-file=/etc/atoll/api-token/token"},
			[]string{"atoll:e2e1"}},
		{"zone", zoneValues("e2e1", "zone-1", "grpcs://172.18.0.2:30685", caFile, "tok"), "Deployment",
			[]string{"--zone=zone-1", "--global-address=grpcs://172.18.0.2:30685", "--global-ca-file=/etc/atoll/global-ca/ca.crt",
				"--injector-init-image=atoll-init:e2e1", "--injector-sidecar-image=atoll-sidecar:e2e1",
				"--api-insecure", "--api-token-file=/etc/atoll/api-token/token"},
			[]string{"atoll:e2e1"}},
	} {
		t.Run(tc.component, func(t *testing.T) {
			manifest, err := chart.Template(helm, nil, tc.values...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := chart.Objects(manifest)
			if err != nil {
				t.Fatal(err)
			}
			w := chart.Find(objs, tc.kind, chart.Release)
			if w == nil {
				t.Fatalf("no %s %s rendered", tc.kind, chart.Release)
			}
			labels, _, _ := unstructured.NestedStringMap(w.Object, "spec", "template", "metadata", "labels")
			for k, v := range map[string]string{"app.kubernetes.io/name": "atoll", "app.kubernetes.io/instance": chart.Release,
				"app.kubernetes.io/component": tc.component} {
				if labels[k] != v {
					t.Errorf("pod label %s = %q, want %q: the NodePort Service atoll-e2e-api selects it", k, labels[k], v)
				}
			}
			containers, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
			if len(containers) != 1 {
				t.Fatalf("%d containers, want 1", len(containers))
			}
			c := containers[0].(map[string]any)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			for _, want := range tc.args {
				if !slices.Contains(args, want) {
					t.Errorf("argument %s missing from %v", want, args)
				}
			}
			if img := c["image"]; !slices.Contains(tc.images, img.(string)) {
				t.Errorf("image %v, want one of %v", img, tc.images)
			}
			ports, _, _ := unstructured.NestedSlice(c, "ports")
			if !slices.ContainsFunc(ports, func(p any) bool {
				m := p.(map[string]any)
				return m["name"] == "api" && m["containerPort"] == int64(5681)
			}) {
				t.Errorf("no container port api 5681 (the NodePort Service's target): %v", ports)
			}
			switch tc.component {
			case "global":
				kds := chart.Find(objs, "Service", chart.Release+"-kds")
				if kds == nil {
					t.Fatal("no Service atoll-kds")
				}
				typ, _, _ := unstructured.NestedString(kds.Object, "spec", "type")
				ports, _, _ := unstructured.NestedSlice(kds.Object, "spec", "ports")
				if typ != "NodePort" || len(ports) != 1 || ports[0].(map[string]any)["nodePort"] != int64(kindKDSNodePort) {
					t.Errorf("Service atoll-kds: type %s, ports %v; want NodePort %d", typ, ports, kindKDSNodePort)
				}
			case "zone":
				dns := chart.Find(objs, "Service", chart.Release+"-dns")
				if dns == nil {
					t.Fatal("no Service atoll-dns")
				}
				if ip, _, _ := unstructured.NestedString(dns.Object, "spec", "clusterIP"); ip != kindZoneDNSClusterIP {
					t.Errorf("Service atoll-dns clusterIP %q, want %s", ip, kindZoneDNSClusterIP)
				}
			}
		})
	}
}

// TestKindCoreDNSStanza finds the stanza in the notes helm prints for the
// provider's zone values (as `helm get notes` prints them on the cluster),
// and refuses notes without one or without an address.
func TestKindCoreDNSStanza(t *testing.T) {
	helm, err := helmbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "kds-ca.pem")
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install := []string{"install", chart.Release, chart.Dir, "--namespace", chart.Namespace, "--dry-run=client"}
	out, err := chart.Helm(helm, append(install, zoneValues("e2e1", "zone-1", "grpcs://172.18.0.2:30685", caFile, "tok")...)...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := coreDNSStanza(string(out))
	if err != nil {
		t.Fatal(err)
	}
	want := "mesh:53 {\n    errors\n    cache 5\n    forward . " + kindZoneDNSClusterIP + ":53\n}"
	if got != want {
		t.Errorf("stanza:\n%s\nwant:\n%s", got, want)
	}

	noIP := append(zoneValues("e2e1", "zone-1", "grpcs://172.18.0.2:30685", caFile, "tok"), "--set", "zone.dns.clusterIP=")
	out, err = chart.Helm(helm, append(install, noIP...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coreDNSStanza(string(out)); err == nil || !strings.Contains(err.Error(), "zone.dns.clusterIP") {
		t.Errorf("notes with CLUSTER_IP: err = %v, want one naming zone.dns.clusterIP", err)
	}
	if _, err := coreDNSStanza("NOTES:\natoll zone zone-1\n"); err == nil || !strings.Contains(err.Error(), "coreDNSSnippet") {
		t.Errorf("notes without a stanza: err = %v, want one naming zone.dns.coreDNSSnippet", err)
	}
}

// TestKindConfig decodes the kind configuration of a zone cluster, field
// names as kind's v1alpha4 Cluster spells them, unknown fields refused.
func TestKindConfig(t *testing.T) {
	type portMapping struct {
		ContainerPort int32  `json:"containerPort"`
		HostPort      int32  `json:"hostPort"`
		ListenAddress string `json:"listenAddress"`
		Protocol      string `json:"protocol"`
	}
	var cfg struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Networking struct {
			PodSubnet     string `json:"podSubnet"`
			ServiceSubnet string `json:"serviceSubnet"`
		} `json:"networking"`
		Nodes []struct {
			Role              string        `json:"role"`
			ExtraPortMappings []portMapping `json:"extraPortMappings"`
		} `json:"nodes"`
	}
	config := kindConfig("10.11.0.0/16", "21001", "21002")
	if err := yaml.UnmarshalStrict([]byte(config), &cfg); err != nil {
		t.Fatalf("%v:\n%s", err, config)
	}
	want := []portMapping{
		{kindAPINodePort, 21001, "127.0.0.1", "TCP"},
		{kindDNSNodePort, 21002, "127.0.0.1", "UDP"},
		{kindDNSNodePort, 21002, "127.0.0.1", "TCP"},
	}
	if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" || cfg.Networking.PodSubnet != "10.11.0.0/16" ||
		cfg.Networking.ServiceSubnet != "10.96.0.0/16" || len(cfg.Nodes) != 1 || cfg.Nodes[0].Role != "control-plane" ||
		!slices.Equal(cfg.Nodes[0].ExtraPortMappings, want) {
		t.Errorf("config decodes as %+v; want one control-plane node with %+v:\n%s", cfg, want, config)
	}
}
