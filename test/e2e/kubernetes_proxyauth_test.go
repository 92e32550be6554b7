package e2e

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// A Kubernetes zone process, running under the chart's RBAC rules, admits
// a pod's proxy on incremental ADS with the pod's projected ServiceAccount
// token (as the injected sidecar presents it) and refuses it without one;
// startKubernetesZone fails the test if any request of the zone's, the
// TokenReviews included, was forbidden.
func TestKubernetesZoneAdmitsPodTokens(t *testing.T) {
	c := startKubeCluster(t)
	g := startGlobal(t, t.TempDir())
	xdsAddr := freePort(t)
	z := startKubernetesZone(t, c, "zone-1", g, "--xds-addr", xdsAddr)

	ctx := context.Background()
	c.createNamespace(t, "kong", map[string]string{kubernetes.SidecarInjection: kubernetes.Enabled})
	if _, err := c.client.CoreV1().ServiceAccounts("kong").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kong"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.createService(t, "kong", "kong-proxy", nil)
	pod := c.createGatewayPodAs(t, "kong", "kong-0", "10.244.1.7", "kong")
	expiry := int64(3600)
	tr, err := c.client.CoreV1().ServiceAccounts("kong").CreateToken(ctx, "kong", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{kubernetes.ProxyAudience}, ExpirationSeconds: &expiry,
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node := resource.DefaultMesh + "." + kubernetes.DataplaneName("kong", "kong-0")

	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	first := func(authorization string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if authorization != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, xds.AuthorizationMetadataKey, authorization)
		}
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: node, UserAgentName: "envoy"},
			TypeUrl: resourcev3.ClusterType}); err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	// The zone makes the pod's Dataplane first; until then the stream is
	// refused with NotFound.
	waitFor(t, 30*time.Second, "the pod's proxy admitted with its token", func() error {
		return first("Bearer " + tr.Status.Token)
	})
	if err := first(""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the pod's proxy without its token: %v, want Unauthenticated", err)
	}
	if err := first("Bearer " + c.env.ServiceAccountToken(t, "kong", "kong")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a token of the pod's ServiceAccount for the API server's audience: %v, want Unauthenticated", err)
	}
	_, metrics := call(t, "GET", z.apiURL+"/metrics", "")
	if want := fmt.Sprintf("atoll_xds_refused_total{code=%q} 2", "Unauthenticated"); !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(metrics) {
		t.Errorf("the zone's metrics lack %s", want)
	}
}

// createGatewayPodAs is createGatewayPod for a pod that runs as the
// ServiceAccount sa ("" for none), so that tokens can be bound to it.
func (c *kubeCluster) createGatewayPodAs(t *testing.T, namespace, name, ip, sa string) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	pod, err := c.client.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "kong"},
			Annotations: map[string]string{kubernetes.GatewayAnnotation: kubernetes.Enabled}},
		Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "proxy", Image: "kong:3.9",
			Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 8000}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s/%s: %v", namespace, name, err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if pod, err = c.client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting the status of pod %s/%s: %v", namespace, name, err)
	}
	return pod
}
