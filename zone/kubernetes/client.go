package kubernetes

import (
	"errors"
	"fmt"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
