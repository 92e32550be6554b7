package inject

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/atoll-mesh/atoll/zone/kubernetes"
)

// Webhooks reads, watches and updates MutatingWebhookConfigurations (the
// typed client of admissionregistration/v1).
type Webhooks interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, error)
	Update(ctx context.Context, c *admissionregistrationv1.MutatingWebhookConfiguration, opts metav1.UpdateOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// rewatchDelay spaces attempts after a failure to read, update or watch
// the configuration.
const rewatchDelay = 5 * time.Second

// keepCABundle keeps caPEM in the caBundle of every webhook of the
// MutatingWebhookConfiguration name until ctx ends: at once, and again
// whenever the configuration changes (re-applied by Helm or kubectl with an
// empty caBundle). Every replica of the zone runs it: each adds its own CA
// to the bundle, keeping the other CAs there that have not expired, so the
// API server trusts whichever replica it calls. An update that loses a
// race is retried.
func keepCABundle(ctx context.Context, client Webhooks, name string, caPEM []byte, log *slog.Logger) error {
	log = log.With("webhook", name)
	for {
		err := syncCABundle(ctx, client, name, caPEM, log)
		var w watch.Interface
		if err == nil {
			w, err = client.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("keeping the webhook's caBundle", "error", err, "retry_in", rewatchDelay)
			t := time.NewTimer(rewatchDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if done := follow(ctx, w, client, name, caPEM, log); done {
			return nil
		}
	}
}

// follow syncs on every change the watch shows, until the watch ends
// (false) or ctx does (true).
func follow(ctx context.Context, w watch.Interface, client Webhooks, name string, caPEM []byte, log *slog.Logger) bool {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return false
			}
			if ev.Type == watch.Added || ev.Type == watch.Modified {
				if err := syncCABundle(ctx, client, name, caPEM, log); err != nil {
					return false
				}
			}
		}
	}
}

// syncCABundle adds caPEM to every webhook's caBundle that lacks it. A
// configuration that does not exist yet is not an error: the watch sees it
// created.
func syncCABundle(ctx context.Context, client Webhooks, name string, caPEM []byte, log *slog.Logger) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := client.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			log.Info("the webhook configuration does not exist yet: its caBundle is set once it is created")
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		changed := false
		for i := range c.Webhooks {
			bundle, added := withCA(c.Webhooks[i].ClientConfig.CABundle, caPEM, time.Now())
			if added {
				c.Webhooks[i].ClientConfig.CABundle, changed = bundle, true
			}
		}
		if !changed {
			return nil
		}
		if _, err := client.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsForbidden(err) {
				return fmt.Errorf("updating the caBundle of MutatingWebhookConfiguration %s: %w: grant the zone update on it (rule in %s/clusterrole-rules.yaml, whose resourceNames must name it)",
					name, err, kubernetes.RBACRules)
			}
			return fmt.Errorf("updating the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
		}
		log.Info("webhook caBundle updated with the injector's CA", "webhooks", len(c.Webhooks))
		return nil
	})
}

// maxBundleCAs bounds the CAs a caBundle keeps: a replica whose data dir
// does not survive a restart makes a new CA each time, and the bundle would
// otherwise grow with every restart for the CAs' ten years.
const maxBundleCAs = 16

// withCA returns bundle with ca in it, and whether that changed bundle:
// ca first, then the certificates of bundle that are not ca and have not
// expired at now, newest first, maxBundleCAs in all. What does not parse
// as a certificate is dropped.
func withCA(bundle, ca []byte, now time.Time) ([]byte, bool) {
	caBlock, _ := pem.Decode(ca)
	if caBlock == nil {
		return bundle, false
	}
	var kept []*x509.Certificate
	present := false
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if bytes.Equal(b.Bytes, caBlock.Bytes) {
			present = true
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil || now.After(cert.NotAfter) {
			continue
		}
		kept = append(kept, cert)
	}
	if present {
		return bundle, false
	}
	slices.SortStableFunc(kept, func(a, b *x509.Certificate) int { return b.NotBefore.Compare(a.NotBefore) })
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caBlock.Bytes})
	for _, cert := range kept[:min(len(kept), maxBundleCAs-1)] {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return out, true
}
