package kubernetes

import (
	"errors"
	"fmt"
	"os"
	"strings"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client rate limits NewClientset sets when the config has none. client-go
// defaults to 5 requests per second with bursts of 10 (controller-runtime to
// 20 and 30): at that pace a zone's first reconcile of 2,000 pods, one
// Dataplane write each, takes minutes, and even 200 per second takes 10 s.
// With 1,000 and bursts of 2,000 the client's limit does not slow a cold
// start of 2,000 pods at all: the API server's pace does. What protects the
// API server is its own admission: the zone keeps at most 32 Dataplane
// writes in flight (crdstore), and API Priority and Fairness (on by default
// since Kubernetes 1.20) queues a ServiceAccount's requests at the
// workload-low priority level, behind the system's and leader elections'.
// The watches are not rate limited.
const (
	DefaultQPS   = 1000
	DefaultBurst = 2000
)

// NewClientset returns a clientset for cfg, with QPS and Burst raised to
// DefaultQPS and DefaultBurst where cfg leaves them unset. cfg is not
// changed.
func NewClientset(cfg *rest.Config) (*k8s.Clientset, error) {
	if cfg == nil {
		return nil, errors.New("kubernetes client: no rest config: pass the in-cluster config or one from a kubeconfig")
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = EventSource
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// inClusterNamespaceFile holds the namespace of the pod a process runs in,
// written by the kubelet next to the ServiceAccount token.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// RESTConfig loads the rest config from kubeconfig (its context, or its
// current one when context is empty), or the in-cluster config when
// kubeconfig is empty. Errors name the setting to fix.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: not running in a pod (%w): pass --kubeconfig", err)
		}
		return cfg, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes.kubeconfig: %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// InClusterNamespace returns the namespace of the pod this process runs
// in, or an error saying to name one when it runs outside a cluster.
func InClusterNamespace() (string, error) {
	b, err := os.ReadFile(inClusterNamespaceFile)
	if err != nil {
		return "", fmt.Errorf("kubernetes.namespace: not set, and not running in a pod (%w): pass --namespace", err)
	}
	ns := strings.TrimSpace(string(b))
	if ns == "" {
		return "", fmt.Errorf("kubernetes.namespace: not set, and %s is empty: pass --namespace", inClusterNamespaceFile)
	}
	return ns, nil
}
