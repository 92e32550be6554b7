package inject_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/atoll-mesh/atoll/test/kubeenv"
	"github.com/atoll-mesh/atoll/zone/kubernetes/inject"
)

// TestWebhookThroughTheAPIServer registers the injector by URL on
// loopback, so the real kube-apiserver calls it over HTTPS with the CA the
// injector generated and put into the caBundle itself.
func TestWebhookThroughTheAPIServer(t *testing.T) {
	env := kubeenv.Start(t)
	client := env.Clientset(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"atoll.io/sidecar-injection": "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := inject.Default()
	cfg.XDSAddress, cfg.Zone = "atoll-zone.atoll-system.svc:5678", "zone-1"
	cfg.DNSAddress = "atoll-zone-dns.atoll-system.svc:53"
	handler, err := inject.NewHandler(cfg, inject.APINamespaces{Client: client.CoreV1().Namespaces()}, log)
	if err != nil {
		t.Fatal(err)
	}
	webhooks := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	srv, err := inject.NewServer(inject.ServeConfig{Addr: "127.0.0.1:0", Dir: t.TempDir(), WebhookName: inject.DefaultWebhookName},
		handler, webhooks, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("injector Run: %v", err)
		}
	})
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Registered without a caBundle: the injector adds its CA.
	url := "https://" + addr.String() + inject.Path
	wh := inject.WebhookConfiguration(inject.DefaultWebhookName, admissionregistrationv1.WebhookClientConfig{URL: &url})
	// UPDATE too, to show that re-admitting an injected pod changes nothing.
	wh.Webhooks[0].Rules[0].Operations = append(wh.Webhooks[0].Rules[0].Operations, admissionregistrationv1.Update)
	// Pods of the "plain" namespace reach the webhook too (opt-in by annotation).
	wh.Webhooks[0].NamespaceSelector = nil
	if _, err := webhooks.Create(ctx, wh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCABundle(t, ctx, client)

	// The API server picks the configuration up in its own time: until it
	// calls the webhook, pods come back without a sidecar (or are refused,
	// failurePolicy Fail, while it lacks the CA).
	gateway := createInjected(t, ctx, client, pod("shop", "gateway", map[string]string{"atoll.io/gateway": "enabled"}))
	init := container(gateway.Spec.InitContainers, inject.InitContainerName)
	if init == nil || !strings.Contains(strings.Join(init.Args, " "), "--redirect-inbound=false") {
		t.Errorf("gateway init container = %+v, want inbound redirection off", init)
	}
	if gateway.Annotations[inject.InjectedAnnotation] != "true" || len(gateway.Spec.Volumes) != 2 ||
		gateway.Spec.Volumes[0].Name != inject.TokenVolumeName || gateway.Spec.Volumes[1].Name != inject.RunVolumeName {
		t.Errorf("gateway annotations %v volumes %+v", gateway.Annotations, gateway.Spec.Volumes)
	}

	t.Run("workload", func(t *testing.T) {
		p, err := client.CoreV1().Pods("plain").Create(ctx, pod("plain", "web",
			map[string]string{"atoll.io/sidecar-injection": "enabled", "atoll.io/exclude-inbound-ports": "8443"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		init := container(p.Spec.InitContainers, inject.InitContainerName)
		if init == nil || !strings.Contains(strings.Join(init.Args, " "), "--redirect-inbound=true --redirect-dns=true --exclude-inbound-ports=9901,8443 ") {
			t.Errorf("workload init container = %+v, want inbound redirection but for 9901 and 8443", init)
		}
		side := container(p.Spec.InitContainers, inject.SidecarContainerName)
		if side == nil || *side.SecurityContext.RunAsUser != inject.ProxyUID {
			t.Errorf("workload sidecar = %+v", side)
		}
	})

	t.Run("re-admission changes nothing", func(t *testing.T) {
		gw, err := client.CoreV1().Pods("shop").Get(ctx, "gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gw.Labels = map[string]string{"updated": "yes"}
		got, err := client.CoreV1().Pods("shop").Update(ctx, gw, metav1.UpdateOptions{})
		if err != nil {
			t.Fatalf("update of the injected pod: %v", err)
		}
		if len(got.Spec.InitContainers) != 2 || len(got.Spec.Containers) != 1 || len(got.Spec.Volumes) != 2 {
			t.Errorf("after update: init %d containers %d volumes %d, want 2, 1, 2",
				len(got.Spec.InitContainers), len(got.Spec.Containers), len(got.Spec.Volumes))
		}
	})

	t.Run("opt-out", func(t *testing.T) {
		p, err := client.CoreV1().Pods("shop").Create(ctx, pod("shop", "batch",
			map[string]string{"atoll.io/sidecar-injection": "disabled"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Spec.Containers) != 1 || len(p.Spec.InitContainers) != 0 || p.Annotations[inject.InjectedAnnotation] != "" {
			t.Errorf("opted-out pod was changed: %+v", p.Spec)
		}
	})

	t.Run("bad annotation refused", func(t *testing.T) {
		_, err := client.CoreV1().Pods("shop").Create(ctx, pod("shop", "bad",
			map[string]string{"atoll.io/gateway": "true"}), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `annotation atoll.io/gateway: "true" is not allowed: use "enabled"`) {
			t.Errorf("create = %v, want the annotation named in the refusal", err)
		}
	})

	t.Run("caBundle restored", func(t *testing.T) {
		c, err := webhooks.Get(ctx, inject.DefaultWebhookName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Webhooks[0].ClientConfig.CABundle = nil // as a re-applied manifest would
		if _, err := webhooks.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitCABundle(t, ctx, client)
	})
}

func waitCABundle(t *testing.T, ctx context.Context, client kubernetes.Interface) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, inject.DefaultWebhookName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return strings.Contains(string(c.Webhooks[0].ClientConfig.CABundle), "BEGIN CERTIFICATE"), nil
	})
	if err != nil {
		t.Fatalf("the injector did not put its CA into the caBundle: %v", err)
	}
}

// createInjected creates p until the API server, once it calls the
// webhook, returns it injected.
func createInjected(t *testing.T, ctx context.Context, client kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		created, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p.DeepCopy(), metav1.CreateOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err
			}
			return false, nil
		}
		if container(created.Spec.InitContainers, inject.SidecarContainerName) != nil {
			got = created
			return true, nil
		}
		last = nil
		zero := int64(0)
		return false, client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	if err != nil {
		t.Fatalf("pod %s/%s never came back injected: %v (last create: %v)", p.Namespace, p.Name, err, last)
	}
	return got
}

func pod(ns, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 8000}}}}},
	}
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}
