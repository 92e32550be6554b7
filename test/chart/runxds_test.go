package chart

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/atoll-mesh/atoll/internal/certs"
	"github.com/atoll-mesh/atoll/test/kubeenv"
)

// TestRenderedZoneServesTheXDSSecret plays the kubelet for one replica of
// a zone rendered with replicas 2, zone.xds.tls and zone.xds.tlsSecret: the
// Secret (tls.crt, tls.key, ca.crt, as cert-manager writes it) mounted
// where the chart says. The zone serves xDS with the Secret's certificate,
// /xds-ca.pem is its ca.crt, and a pod the injector admits gets that CA:
// what every replica serves and gives sidecars, so any replica behind the
// xDS Service is trusted.
func TestRenderedZoneServesTheXDSSecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, dyn := StartCluster(ctx, t)

	issuer, _, err := certs.EnsureSelfSigned(t.TempDir(), []string{"localhost", "127.0.0.1", Release + "-xds." + Namespace + ".svc"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secretData := map[string]any{}
	for key, path := range map[string]string{"tls.crt": issuer.Cert, "tls.key": issuer.Key, "ca.crt": issuer.CA} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		secretData[key] = string(b)
	}
	caPEM := []byte(secretData["ca.crt"].(string))

	ports := freePorts(t, 5)
	objs := variant{name: "zone-xds-secret-run", mode: "zone", set: []string{
		"replicas=2",
		"zone.xds.tls=true",
		"zone.xds.tlsSecret=zone-1-xds-tls",
		"api.tls=insecure",
		"api.port=" + ports[0],
		"zone.dns.port=" + ports[1],
		"zone.xds.port=" + ports[2],
		"zone.injector.port=" + ports[3],
		"global.address=grpcs://127.0.0.1:" + ports[4],
		"zone.token.existingSecret.name=",
		"zone.token.value=a-zone-token",
	}}.objects(t)
	// The Secret is the operator's (cert-manager's), not the chart's.
	objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
		"metadata":   map[string]any{"name": "zone-1-xds-tls", "namespace": Namespace},
		"stringData": secretData,
	}})
	CreateAll(ctx, t, env.Config(), dyn, objs)
	if _, err := env.Clientset(t).CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "shop", Labels: map[string]string{"atoll.io/sidecar-injection": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kubeconfig := kubeenv.WriteKubeconfig(t, env.ServiceAccountConfig(t, Namespace, Release))
	zone, args := runPod(t, objs, "Deployment", []string{"--kubeconfig=" + kubeconfig}, []string{"POD_NAME=atoll-0"})
	for _, want := range []string{"--xds-tls-cert=", "--xds-tls-key=", "--xds-tls-ca="} {
		if !strings.Contains(strings.Join(args, " "), want) {
			t.Fatalf("the Deployment runs %q, without %s", args, want)
		}
	}

	// The injector's own certificate is TestRenderedZoneRuns' subject; here
	// only what it puts into pods counts.
	webhook := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	review := admissionReview(t, "shop", &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kong", Namespace: "shop", Annotations: map[string]string{"atoll.io/gateway": "enabled"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kong", Image: "kong:3.9"}}},
	})
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var patch []byte
	for last := ""; patch == nil; {
		select {
		case <-zone.Exited:
			t.Fatalf("the zone exited (%v) with the chart's arguments %q:\n%s", zone.Err, args, Tail(zone.LogPath))
		case <-ctx.Done():
			t.Fatalf("the zone's injector did not admit a pod (last: %s):\n%s", last, Tail(zone.LogPath))
		case <-tick.C:
		}
		if ready, body := get("http://127.0.0.1:" + ports[0] + "/readyz"); !ready {
			last = "/readyz: " + body
			continue
		}
		if patch, err = admit(webhook, "https://127.0.0.1:"+ports[3]+"/inject", review); err != nil {
			last = err.Error()
		}
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := tls.Dial("tcp", "127.0.0.1:"+ports[2], &tls.Config{RootCAs: pool, ServerName: Release + "-xds." + Namespace + ".svc", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("xDS with the Secret's CA for the xDS Service's name: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0].Raw
	conn.Close()
	chain, err := certs.ParseCertificates([]byte(secretData["tls.crt"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served, chain[0].Raw) {
		t.Error("xDS serves a certificate other than the Secret's tls.crt")
	}
	if _, body := get("http://127.0.0.1:" + ports[0] + "/xds-ca.pem"); !strings.Contains(body, strings.TrimSpace(string(caPEM))) {
		t.Errorf("/xds-ca.pem answers %q, want the Secret's ca.crt", body)
	}
	// The CA travels in the sidecar's environment, JSON-encoded in the patch.
	want, err := json.Marshal(string(caPEM))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(patch, want) {
		t.Errorf("the injector's patch does not carry the Secret's ca.crt:\n%s", patch)
	}
}

// admissionReview is an AdmissionReview asking to create pod in namespace.
func admissionReview(t *testing.T, namespace string, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "chart-test", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: namespace, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// admit posts review to the webhook at url and returns the patch of an
// allowed response.
func admit(c *http.Client, url string, review []byte) ([]byte, error) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(review))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil || out.Response == nil {
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	if !out.Response.Allowed || len(out.Response.Patch) == 0 {
		return nil, fmt.Errorf("response %+v, want allowed with a patch", out.Response)
	}
	return out.Response.Patch, nil
}
