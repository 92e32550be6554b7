package kubernetes_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/api/v1alpha1"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store"
	"github.com/atoll-mesh/atoll/internal/store/memstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// countingReviews counts the TokenReviews sent to the real API server.
type countingReviews struct {
	kubernetes.TokenReviewer
	n atomic.Int64
}

func (c *countingReviews) Create(ctx context.Context, r *authenticationv1.TokenReview, o metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	c.n.Add(1)
	return c.TokenReviewer.Create(ctx, r, o)
}

// On a real API server: a sidecar is admitted with its own pod's
// projected ServiceAccount token only. A token the TokenRequest API
// issued for pod A, presented as pod B, is refused with PermissionDenied;
// no token, a token for another audience, a forged one or one not bound
// to a pod are refused; a recreated pod's old token is refused even while
// its review is remembered; Dataplanes registered through the API keep the
// zone's tokens.
func TestProxyCredentials(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st := memstore.New()
	if err := store.EnsureMesh(ctx, st, resource.DefaultMesh, resource.OriginGlobal); err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: "zone-1", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	reviews := &countingReviews{TokenReviewer: client.AuthenticationV1().TokenReviews()}
	auth, err := kubernetes.NewProxyAuthenticator(kubernetes.ProxyAuthConfig{Reviews: reviews, PodUID: c.PodUID})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := runWithXDS(t, ctx, cancel, c, st, xds.Config{ProxyAuthenticator: auth, Log: log, Registry: reg}, nil)

	k := cluster{t: t, client: client}
	k.namespace("shop", true)
	for _, sa := range []string{"web", "other"} {
		if _, err := client.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	k.service(service("shop", "web", map[string]string{"app": "web"}, tcp(80, intstr.FromInt32(8080))))
	withSA := func(p *corev1.Pod) { p.Spec.ServiceAccountName = "web" }
	web := map[string]string{"app": "web"}
	k.pod(newPod("shop", "web-a", web, gateway, withSA))
	k.pod(newPod("shop", "web-b", web, gateway, withSA))
	for _, pod := range []string{"web-a", "web-b"} {
		dataplaneIs(t, st, resource.DefaultMesh, "shop", pod, pod+"'s Dataplane", func(r *resource.Resource) (bool, string) {
			return r != nil, "no Dataplane"
		})
	}
	// A Dataplane registered through the zone's API, not made from a pod.
	if _, err := st.Create(ctx, &resource.Resource{Meta: resource.Meta{Type: resource.DataplaneType, Mesh: resource.DefaultMesh, Name: "vm-1",
		Labels: map[string]string{resource.OriginLabel: resource.OriginZone}},
		Spec: &v1alpha1.Dataplane{Networking: &v1alpha1.Dataplane_Networking{Address: "10.9.0.1",
			Gateway: &v1alpha1.Dataplane_Networking_Gateway{Type: v1alpha1.Dataplane_Networking_Gateway_DELEGATED}}}}); err != nil {
		t.Fatal(err)
	}

	podA, err := client.CoreV1().Pods("shop").Get(ctx, "web-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenA := podToken(t, client, "shop", "web", podA, kubernetes.ProxyAudience)
	nodeA := resource.DefaultMesh + "." + kubernetes.DataplaneName("shop", "web-a")
	nodeB := resource.DefaultMesh + "." + kubernetes.DataplaneName("shop", "web-b")
	addr := srv.Addr().String()

	if err := firstAnswer(t, addr, nodeA, "Bearer "+tokenA); err != nil {
		t.Fatalf("pod A's proxy with its own token: %v", err)
	}
	reviewed := reviews.n.Load()
	refused := func(what string, err error, code codes.Code, says string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), says) {
			t.Errorf("%s: %v; want %s saying %q", what, err, code, says)
		}
	}
	refused("pod A's token presented as pod B", firstAnswer(t, addr, nodeB, "Bearer "+tokenA),
		codes.PermissionDenied, "the token is of ServiceAccount shop/web of pod shop/web-a, another pod")
	if err := firstAnswer(t, addr, nodeA, "Bearer "+tokenA); err != nil {
		t.Errorf("pod A's proxy reconnecting: %v", err)
	}
	if n := reviews.n.Load(); n != reviewed {
		t.Errorf("%d TokenReviews for a token already reviewed, want none", n-reviewed)
	}

	refused("no token", firstAnswer(t, addr, nodeA, ""), codes.Unauthenticated, "authorization: Bearer <token>")
	refused("not a bearer token", firstAnswer(t, addr, nodeA, "Basic "+tokenA), codes.Unauthenticated, `is not "Bearer <token>"`)
	refused("the zone's token instead", firstAnswerAs(t, addr, withZoneToken(nodeA, srv.Token(nodeA)), ""), codes.Unauthenticated, "no credential")
	refused("a forged token", firstAnswer(t, addr, nodeA, "Bearer "+tokenA[:len(tokenA)-4]+"AAAA"), codes.Unauthenticated, "the API server refused the token")
	refused("pod A's token for another audience", firstAnswer(t, addr, nodeA, "Bearer "+podToken(t, client, "shop", "web", podA, "")),
		codes.Unauthenticated, "the API server refused the token")
	refused("a ServiceAccount token bound to no pod", firstAnswer(t, addr, nodeA, "Bearer "+podToken(t, client, "shop", "other", nil, kubernetes.ProxyAudience)),
		codes.PermissionDenied, "is not bound to a pod")

	// Dataplanes registered through the API keep the zone's tokens.
	if err := firstAnswer(t, addr, resource.DefaultMesh+".vm-1", ""); err != nil {
		t.Errorf("an API-registered Dataplane's proxy without a credential (zone tokens not required): %v", err)
	}

	// Pod A is recreated under its name: its old token, whose review is
	// still remembered, names the old pod's UID.
	if err := client.CoreV1().Pods("shop").Delete(ctx, "web-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	k.pod(newPod("shop", "web-a", web, gateway, withSA))
	eventually(t, "the zone to see pod A's new UID", func() (bool, string) {
		uid, ok := c.PodUID("shop", "web-a")
		return ok && uid != podA.UID, "UID " + string(uid)
	})
	dataplaneIs(t, st, resource.DefaultMesh, "shop", "web-a", "the new pod A's Dataplane", func(r *resource.Resource) (bool, string) {
		return r != nil, "no Dataplane"
	})
	// The controller may delete and write the Dataplane again as it
	// catches up with the two events: a NotFound meanwhile is not the
	// answer.
	var old error
	eventually(t, "an answer to the recreated pod's old token", func() (bool, string) {
		old = firstAnswer(t, addr, nodeA, "Bearer "+tokenA)
		return status.Code(old) != codes.NotFound, fmt.Sprint(old)
	})
	refused("a recreated pod's old token", old, codes.PermissionDenied, "(recreated)")

	counts := refusals(t, reg)
	if counts["PermissionDenied"] != 3 || counts["Unauthenticated"] != 5 {
		t.Errorf("atoll_xds_refused_total by code: %v, want PermissionDenied 3, Unauthenticated 5", counts)
	}
}

// podToken issues a token for ServiceAccount namespace/sa through the
// TokenRequest API, bound to pod unless nil, for audience (the API
// server's default when empty).
func podToken(t *testing.T, client k8s.Interface, namespace, sa string, pod *corev1.Pod, audience string) string {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64)}}
	*req.Spec.ExpirationSeconds = 3600
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(context.Background(), sa, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for ServiceAccount %s/%s: %v", namespace, sa, err)
	}
	return tr.Status.Token
}

// firstAnswer opens an ADS stream to addr as node id with the given
// authorization metadata (none when empty) and returns the error of its
// first answer, nil when it got configuration.
func firstAnswer(t *testing.T, addr, id, authorization string) error {
	t.Helper()
	return firstAnswerAs(t, addr, &corev3.Node{Id: id, UserAgentName: "envoy"}, authorization)
}

func firstAnswerAs(t *testing.T, addr string, node *corev3.Node, authorization string) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, xds.AuthorizationMetadataKey, authorization)
	}
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	return err
}

// withZoneToken is node id carrying the zone's token in its metadata.
func withZoneToken(id, token string) *corev3.Node {
	n := &corev3.Node{Id: id, UserAgentName: "envoy"}
	n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{xds.TokenMetadataKey: structpb.NewStringValue(token)}}
	return n
}

// refusals is atoll_xds_refused_total by code, from reg.
func refusals(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "atoll_xds_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
