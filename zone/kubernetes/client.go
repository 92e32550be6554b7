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
// defaults to 5 requests per second with bursts of 10: at that pace the
// Service patches and Events for 2,000 pods take minutes. The watches
// themselves are not rate limited.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
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
