package zone

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/atoll-mesh/atoll/internal/store/crdstore"
	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/test/zonerbac"
	"github.com/atoll-mesh/atoll/zone/kubernetes/inject"
)

// TestKubernetesModeServesTheInjector runs Kubernetes mode with the
// injector on, as the zone's ServiceAccount bound to exactly the chart's
// rules: the zone puts its generated CA into the chart's webhook
// configuration, and the API server, calling it by URL on loopback, gets
// pods injected with the zone's settings.
func TestKubernetesModeServesTheInjector(t *testing.T) {
	env := kubeenv.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	admin := env.Clientset(t)
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := crdstore.InstallCRDs(ctx, dyn, filepath.Join("..", "charts", "atoll", "crds")); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "atoll-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"atoll.io/sidecar-injection": "enabled"}}},
	} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := zonerbac.Load(zonerbac.Dir(".."))
	if err != nil {
		t.Fatal(err)
	}
	if err := zonerbac.Grant(ctx, admin, "atoll-system", "atoll-zone", rules); err != nil {
		t.Fatal(err)
	}

	// The port is picked here so that the webhook's URL can name it; the
	// listener is closed before the zone listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := Default()
	cfg.Zone, cfg.Mode, cfg.DataDir = "zone-1", ModeKubernetes, t.TempDir()
	cfg.Kubernetes.Kubeconfig = kubeenv.WriteKubeconfig(t, env.ServiceAccountConfig(t, "atoll-system", "atoll-zone"))
	cfg.Kubernetes.Namespace = "atoll-system"
	cfg.Kubernetes.Injector.Addr = addr
	cfg.Kubernetes.Injector.XDSAddress = "atoll-zone.atoll-system.svc:5678"
	cfg.Kubernetes.Injector.DNSAddress = "atoll-zone-dns.atoll-system.svc:53"
	cfg.Kubernetes.Injector.SidecarImage = "registry.example/atoll-sidecar:1.0"
	cfg.Kubernetes.Injector.EnvoyLogLevel = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := openMode(ctx, cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer m.store.Close()
	done := make(chan error, 1)
	go func() { done <- m.watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("kubernetes mode's watch: %v", err)
		}
	})

	url := "https://" + addr + inject.Path
	webhooks := admin.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := webhooks.Create(ctx, inject.WebhookConfiguration(cfg.Kubernetes.Injector.WebhookName,
		admissionregistrationv1.WebhookClientConfig{URL: &url}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var injected *corev1.Pod
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gateway", Namespace: "shop",
			Annotations: map[string]string{"atoll.io/gateway": "enabled"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "kong", Image: "kong:3"}}}}
		created, err := admin.CoreV1().Pods("shop").Create(ctx, p, metav1.CreateOptions{})
		if err != nil { // refused while the API server lacks the CA (failurePolicy Fail)
			if ctx.Err() == nil {
				last = err
			}
			return false, nil
		}
		if len(created.Spec.InitContainers) == 2 {
			injected = created
			return true, nil
		}
		zero := int64(0)
		return false, admin.CoreV1().Pods("shop").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	if err != nil {
		t.Fatalf("the pod never came back injected: %v (last refusal: %v)", err, last)
	}
	side := injected.Spec.InitContainers[1] // a native sidecar, after the rules
	if side.Name != inject.SidecarContainerName || side.Image != "registry.example/atoll-sidecar:1.0" {
		t.Errorf("sidecar %s image %s, want %s image registry.example/atoll-sidecar:1.0", side.Name, side.Image, inject.SidecarContainerName)
	}
	env2 := map[string]string{}
	for _, e := range side.Env {
		env2[e.Name] = e.Value
	}
	if env2["ATOLL_ZONE"] != "zone-1" || env2["ATOLL_XDS_ADDRESS"] != "atoll-zone.atoll-system.svc:5678" || env2["ENVOY_LOG_LEVEL"] != "debug" {
		t.Errorf("sidecar env = %v, want the zone's name, xDS address and log level", env2)
	}
	if args := strings.Join(injected.Spec.InitContainers[0].Args, " "); !strings.Contains(args, "--redirect-inbound=false") {
		t.Errorf("gateway init args = %q, want inbound redirection off", args)
	}
}
