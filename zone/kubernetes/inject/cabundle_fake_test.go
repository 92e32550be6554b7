package inject

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestKeepCABundleWaitsForTheConfiguration starts before the webhook
// configuration exists, as a zone installed before its webhook does.
func TestKeepCABundleWaitsForTheConfiguration(t *testing.T) {
	client := fake.NewClientset()
	webhooks := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	ca := caPEM(t, "ours", time.Now().Add(time.Hour))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- keepCABundle(ctx, webhooks, DefaultWebhookName, ca, slog.New(slog.DiscardHandler)) }()

	url := "https://127.0.0.1:5443/inject"
	if _, err := webhooks.Create(ctx, WebhookConfiguration(DefaultWebhookName, admissionregistrationv1.WebhookClientConfig{URL: &url}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := webhooks.Get(ctx, DefaultWebhookName, metav1.GetOptions{})
		return err == nil && bytes.Equal(c.Webhooks[0].ClientConfig.CABundle, ca), err
	})
	if err != nil {
		t.Errorf("caBundle never held the CA: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("keepCABundle = %v, want nil once ctx ends", err)
	}
}

func TestSyncCABundleNamesTheRuleWhenForbidden(t *testing.T) {
	url := "https://127.0.0.1:5443/inject"
	client := fake.NewClientset(WebhookConfiguration(DefaultWebhookName, admissionregistrationv1.WebhookClientConfig{URL: &url}))
	client.PrependReactor("update", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"},
			DefaultWebhookName, nil)
	})
	err := syncCABundle(t.Context(), client.AdmissionregistrationV1().MutatingWebhookConfigurations(), DefaultWebhookName,
		caPEM(t, "ours", time.Now().Add(time.Hour)), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "charts/atoll/files/zone-rbac/clusterrole-rules.yaml") {
		t.Errorf("syncCABundle = %v, want the rules file named", err)
	}
}
