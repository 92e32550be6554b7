package zone

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/atoll-mesh/atoll/internal/apiserver"
	"github.com/atoll-mesh/atoll/internal/resource"
	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/zone/kubernetes"
	"github.com/atoll-mesh/atoll/zone/xds"
)

// kubernetesTypes are the custom resources a Kubernetes zone keeps its
// state in: its Dataplanes and ZoneIngress, and what the global sends.
var kubernetesTypes = []resource.Type{resource.MeshType, resource.DataplaneType, resource.ZoneIngressType,
	resource.VIPTableType, resource.ServiceEndpointsType}

// openKubernetes keeps the zone's state as custom resources of the API
// server cfg.Kubernetes names, and makes Dataplanes of the pods in the
// mesh (zone/kubernetes). It checks first that the system namespace and
// the CRDs exist, so a missing install step is named at start.
func openKubernetes(ctx context.Context, cfg Config, log *slog.Logger) (*mode, error) {
	k := cfg.Kubernetes
	// client-go logs (leader election, watch errors) through klog: send
	// them to the zone's log, in its format.
	klog.SetSlogLogger(log.With("component", "client-go"))
	rc, err := kubernetes.RESTConfig(k.Kubeconfig, k.Context)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = float32(k.QPS), k.Burst
	namespace := k.Namespace
	if namespace == "" {
		if namespace, err = kubernetes.InClusterNamespace(); err != nil {
			return nil, err
		}
	}
	client, err := kubernetes.NewClientset(rc)
	if err != nil {
		return nil, err
	}
	if err := checkKubernetes(ctx, client.Discovery(), func(ctx context.Context) error {
		_, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		return err
	}, rc.Host, namespace); err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	// The store sets each Dataplane's owner (its pod) from the controller,
	// which writes through the store: tie them after both exist.
	var controller *kubernetes.Controller
	st, err := crdstore.New(crdstore.Config{Client: dyn, Namespace: namespace, Logger: log,
		Owners: func(r *resource.Resource) []metav1.OwnerReference { return controller.Owners(r) }})
	if err != nil {
		return nil, err
	}
	controller, err = kubernetes.NewController(kubernetes.Config{Client: client, Store: st, Zone: cfg.Zone, Log: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	// Sidecars present their pod's ServiceAccount token on their xDS
	// streams, checked with TokenReviews against the controller's pods.
	proxyAuth, err := kubernetes.NewProxyAuthenticator(kubernetes.ProxyAuthConfig{
		Reviews: client.AuthenticationV1().TokenReviews(), PodUID: controller.PodUID})
	if err != nil {
		st.Close()
		return nil, err
	}
	elected, err := newElection(rc, namespace, cfg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	watch, err := withInjector(controller.Watch, client, cfg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	log.Info("kubernetes mode", "component", "zone", "apiServer", rc.Host, "namespace", namespace,
		"lease", cfg.Kubernetes.LeaderElection.Lease(cfg.Zone), "identity", elected.Identity())
	return &mode{store: st, source: sourceFunc(controller.Lead), watch: watch, election: elected,
		checks: []apiserver.Check{
			storeCheck(st),
			{Name: "kubernetes", Check: func(context.Context) error { return controller.Ready() }},
		},
		serviceAddresses: controller.ServiceAddresses, onServiceAddresses: controller.OnServiceAddresses, proxyAuth: proxyAuth}, nil
}

var (
	_ election               = (*kubernetes.Election)(nil)
	_ xds.ProxyAuthenticator = (*kubernetes.ProxyAuthenticator)(nil)
)

// newElection is the election among the zone's replicas, over the Lease
// cfg names in the zone's namespace, with a client of its own so that
// renewals never queue behind the controller's writes.
func newElection(rc *rest.Config, namespace string, cfg Config, log *slog.Logger) (*kubernetes.Election, error) {
	client, err := kubernetes.NewClientset(rest.CopyConfig(rc))
	if err != nil {
		return nil, err
	}
	identity, err := kubernetes.NewIdentity()
	if err != nil {
		return nil, err
	}
	le := cfg.Kubernetes.LeaderElection
	return kubernetes.NewElection(kubernetes.ElectionConfig{Client: client, Namespace: namespace, Name: le.Lease(cfg.Zone),
		Identity: identity, LeaseDuration: le.LeaseDuration, RenewDeadline: le.RenewDeadline, RetryPeriod: le.RetryPeriod, Log: log})
}

// sourceFunc is a function run as a source.
type sourceFunc func(ctx context.Context) error

func (f sourceFunc) Run(ctx context.Context) error { return f(ctx) }

// checkKubernetes checks that the API server at host answers, serves the
// CRDs of charts/atoll/crds and has the namespace (namespaceExists).
func checkKubernetes(ctx context.Context, disc discovery.DiscoveryInterface, namespaceExists func(context.Context) error, host, namespace string) error {
	gv := crdstore.Group + "/" + crdstore.Version
	list, err := disc.ServerResourcesForGroupVersion(gv)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: cannot reach the API server at %s: %w", host, err)
	}
	var served []string
	if list != nil {
		for _, r := range list.APIResources {
			served = append(served, r.Name)
		}
	}
	var missing []string
	for _, t := range kubernetesTypes {
		gvr, err := crdstore.GVR(t)
		if err != nil {
			return err
		}
		if !slices.Contains(served, gvr.Resource) {
			missing = append(missing, gvr.Resource+"."+crdstore.Group)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kubernetes: the API server at %s does not serve the CRDs %s: install them with kubectl apply -f charts/atoll/crds/",
			host, strings.Join(missing, ", "))
	}
	switch err := namespaceExists(ctx); {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("kubernetes.namespace: namespace %q does not exist: create it (kubectl create namespace %s) or pass another --namespace", namespace, namespace)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("kubernetes.namespace: reading namespace %q is forbidden: bind the zone's ServiceAccount to the ClusterRole and Role of charts/atoll (rules in charts/atoll/files/zone-rbac): %w", namespace, err)
	case err != nil:
		return fmt.Errorf("kubernetes.namespace: reading namespace %q: %w", namespace, err)
	}
	return nil
}
