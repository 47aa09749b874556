package config_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// notInstalled are the API groups whose CRDs the test API server lacks (cert-manager and the
// Prometheus operator are installed separately in a real cluster).
var notInstalled = []string{"cert-manager.io", "monitoring.coreos.com"}

// warnings collects the API server's warning headers, per object applied.
type warnings struct {
	mu   sync.Mutex
	seen []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

// take returns the warnings seen since the last call.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := w.seen
	w.seen = nil
	return seen
}

// applyOrder puts the Namespace first and the CRDs next, so that everything after finds them,
// and the webhook configurations last: their Service has no endpoints, so they must not see
// any create that follows them.
func applyOrder(u *unstructured.Unstructured) int {
	switch u.GetKind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		return 3
	default:
		return 2
	}
}

// TestDefaultOverlayApplies server-side applies the output of config/default to a real API
// server, as `kubectl apply --server-side` would, and expects every object to be accepted
// without warnings (the Namespace warns on pod templates below the restricted profile).
func TestDefaultOverlayApplies(t *testing.T) {
	ctx := t.Context()
	cfg := rest.CopyConfig(env.Config)
	warned := &warnings{}
	cfg.WarningHandlerWithContext = warned
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	var objs []*unstructured.Unstructured
	skipped := 0
	for _, u := range build(t, "default") {
		if slices.Contains(notInstalled, u.GroupVersionKind().Group) {
			skipped++
			t.Logf("skipped %s %s/%s: its CRD is not installed here", u.GroupVersionKind().GroupKind(), u.GetNamespace(), u.GetName())
			continue
		}
		objs = append(objs, u)
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return applyOrder(a) - applyOrder(b) })
	t.Logf("applying %d objects, skipped %d", len(objs), skipped)

	for _, u := range objs {
		name := fmt.Sprintf("%s %s", u.GetKind(), client.ObjectKeyFromObject(u))
		if applyOrder(u) == 3 {
			// Registered before the apply, so a half-failed test still removes them.
			t.Cleanup(func() { deleteWebhookConfiguration(t, c, u.GroupVersionKind().Kind, u.GetName()) })
		}
		applied := u.DeepCopy()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied), client.FieldOwner("sluice-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s: not accepted: %v", name, err)
			continue
		}
		if applied.GetUID() == "" {
			t.Errorf("%s: accepted but the response has no uid", name)
		}
		if w := warned.take(); len(w) > 0 {
			t.Errorf("%s: the API server warned: %q", name, w)
		}
	}
}

// deleteWebhookConfiguration removes one webhook configuration, so that later tests in the
// package are not sent to a webhook Service without endpoints.
func deleteWebhookConfiguration(t *testing.T, c client.Client, kind, name string) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("admissionregistration.k8s.io/v1")
	u.SetKind(kind)
	u.SetName(name)
	// t.Context is already canceled when cleanups run.
	if err := c.Delete(context.Background(), u); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting %s %s: %v", kind, name, err)
	}
}
