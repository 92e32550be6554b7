package chart

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// TestRenderedZoneRuns installs the rendered zone on a real kube-apiserver
// (CRDs, ServiceAccount, RBAC, Secret, ConfigMap, Services, webhook, the
// Deployment) and plays the kubelet for one replica: it runs cmd/atoll with
// the Deployment's arguments and environment, its mounted files written
// from the rendered Secret and ConfigMap, as the chart's ServiceAccount. The
// zone must become ready under the chart's RBAC and put its webhook CA into
// the rendered MutatingWebhookConfiguration, which it may only do when the
// chart's names line up with the rules. The global is not running: a zone
// serves without it.
func TestRenderedZoneRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, dyn := StartCluster(ctx, t)
	cfg := env.Config()

	ports := freePorts(t, 5)
	objs := variant{name: "zone-run", mode: "zone", set: []string{
		"replicas=1",
		"api.tls=insecure",
		"api.port=" + ports[0],
		"zone.dns.port=" + ports[1],
		"zone.xds.port=" + ports[2],
		"zone.injector.port=" + ports[3],
		"global.address=grpcs://127.0.0.1:" + ports[4],
		"zone.token.existingSecret.name=",
		"zone.token.value=a-zone-token",
	}}.objects(t)
	CreateAll(ctx, t, cfg, dyn, objs)

	kubeconfig := kubeenv.WriteKubeconfig(t, env.ServiceAccountConfig(t, Namespace, Release))
	zone, args := runPod(t, objs, "Deployment", []string{"--kubeconfig=" + kubeconfig}, []string{"POD_NAME=atoll-0"})
	logPath, exited := zone.LogPath, zone.Exited

	readyz := "http://127.0.0.1:" + ports[0] + "/readyz"
	mwc := dyn.Resource(schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"})
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-exited:
			t.Fatalf("the zone exited (%v) with the chart's arguments %q:\n%s", zone.Err, args, Tail(logPath))
		case <-ctx.Done():
			t.Fatalf("the zone did not become ready with its webhook CA in place (last: %s):\n%s", last, Tail(logPath))
		case <-tick.C:
		}
		ready, body := get(readyz)
		if !ready {
			last = "/readyz: " + body
			continue
		}
		w, err := mwc.Get(ctx, "atoll-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hooks, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
		if ca, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "caBundle"); ca == "" {
			last = "ready, no caBundle in the MutatingWebhookConfiguration yet"
			continue
		}
		return
	}
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

func get(url string) (bool, string) {
	resp, err := http.Get(url)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
}
