package gatewayapi

import (
	"context"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/routes"
	"github.com/sluice-mesh/sluice/internal/routerules"
)

// A MeshPolicy's settings for a generated route: the policy only publishes them (the route is
// driven by its Rollout), the Rollout's next Apply composes them into the rules (a new weight
// keeps them); once the policy takes them out, the next Apply takes them out and drops the
// tombstone.
func TestGeneratedRouteKeepsMeshPolicySettings(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	ext := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}
	ro := checkoutRollout()
	ro.UID = s.OwnerUID
	rollouts := []meshv1alpha1.Rollout{ro}
	edit := routes.Edit{
		Policy: "pay", Namespace: ns,
		Backends: routes.Backends([]string{"checkout"}, rollouts),
		Settings: &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}, Filters: []gwv1.HTTPRouteFilter{ext}},
		Owned:    []string{"pay-retry"},
	}
	before := getRoute(t, ns)
	carrying, err := routes.Sync(ctx, k8s, edit, rollouts)
	if err != nil || len(carrying) != 1 {
		t.Fatalf("Sync: %v, carrying %v", err, carrying)
	}
	published := getRoute(t, ns)
	assertSameJSON(t, "rules after the policy published (it does not write them)", published.Spec.Rules, before.Spec.Rules)
	if published.Annotations[routerules.AnnotationKey("pay")] == "" || published.Annotations[meshv1alpha1.MeshPolicyRouteAnnotation] != "pay" {
		t.Fatalf("annotations %v: no publication", published.Annotations)
	}

	s.Stable.Weight, s.Canary.Weight = 50, 50
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	rt := getRoute(t, ns)
	want := wantSplitRule(50, 50, ext)
	want.Timeouts = &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}
	assertSameJSON(t, "split rule after the Rollout re-applied", rt.Spec.Rules, []gwv1.HTTPRouteRule{want})
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	if again := getRoute(t, ns); again.ResourceVersion != rt.ResourceVersion {
		t.Errorf("an unchanged split with composed settings rewrote the route")
	}

	edit.Settings = nil
	if _, err := routes.Sync(ctx, k8s, edit, rollouts); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	rt = getRoute(t, ns)
	assertSameJSON(t, "split rule after the policy left", rt.Spec.Rules, []gwv1.HTTPRouteRule{wantSplitRule(50, 50)})
	for k, v := range rt.Annotations {
		t.Errorf("annotation %s=%s left after the policy left", k, v)
	}
}

// routes.Routed finds the targets a GAMMA route (a Service parent) routes: the generated
// route's Service parent "checkout" is one; its Gateway parent and other names are not.
func TestRoutedFindsGAMMAParents(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	if err := New(k8s).Apply(ctx, generatedSplit(ns)); err != nil {
		t.Fatal(err)
	}
	got, err := routes.Routed(ctx, k8s, ns, []string{"checkout", "edge", "cart"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["checkout"] {
		t.Errorf("Routed = %v, want only checkout", got)
	}
}

// checkoutRollout is the Rollout of the apex Service checkout (the Split of these tests).
func checkoutRollout() meshv1alpha1.Rollout {
	ro := meshv1alpha1.Rollout{}
	ro.Name = "checkout"
	ro.Spec.Service.Name = "checkout"
	return ro
}

// A route changes hands without losing a policy's settings: while a Rollout drives the user's
// route the policy publishes and the router composes; after the Rollout's Release the policy
// writes the rules itself, and finds them already as it wants them; taking the settings out then
// takes the timeout out (the policy had replaced the rule's own) and leaves the rest as in Git.
func TestRouteChangesHandsKeepingPolicySettings(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	orig := rulesOf(t, getUnstructured(t, ns))
	s := existingSplit(ns)
	ro := checkoutRollout()
	ro.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef = &meshv1alpha1.LocalObjectReference{Name: "checkout"}
	rollouts := []meshv1alpha1.Rollout{ro}
	edit := routes.Edit{
		Policy: "pay", Namespace: ns,
		Backends: routes.Backends([]string{"checkout"}, rollouts),
		Settings: &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}},
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := routes.Sync(ctx, k8s, edit, rollouts); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, getUnstructured(t, ns))[0]["timeouts"]; mustJSON(t, got) != mustJSON(t, map[string]any{"request": "5s"}) {
		t.Fatalf("the driven rule's timeouts = %s, want the policy's (replacing the rule's own 10s)", mustJSON(t, got))
	}

	if err := r.Release(ctx, s); err != nil {
		t.Fatal(err)
	}
	released := getUnstructured(t, ns)
	if _, err := routes.Sync(ctx, k8s, edit, nil); err != nil { // no Rollout drives it now
		t.Fatal(err)
	}
	if got := getUnstructured(t, ns); got.GetResourceVersion() != released.GetResourceVersion() {
		t.Errorf("the policy rewrote a route the Release had left as it wants it:\n%s", mustJSON(t, rulesOf(t, got)))
	}

	edit.Settings = nil
	if _, err := routes.Sync(ctx, k8s, edit, nil); err != nil {
		t.Fatal(err)
	}
	after := getUnstructured(t, ns)
	apiRule := rulesOf(t, after)[0]
	if _, ok := apiRule["timeouts"]; ok {
		t.Errorf("timeouts left after the policy took its settings out: %s", mustJSON(t, apiRule))
	}
	assertSameJSON(t, "the /static rule", rulesOf(t, after)[1], orig[1])
	for k := range after.GetAnnotations() {
		if strings.Contains(k, "sluice") {
			t.Errorf("annotation %s left on the user's route", k)
		}
	}
}
