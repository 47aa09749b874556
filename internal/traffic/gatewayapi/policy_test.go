package gatewayapi

import (
	"context"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/routes"
)

// A MeshPolicy's settings written into a generated route survive the Rollout regenerating it
// (a new weight), and once the policy takes them out the Rollout does not put them back.
func TestGeneratedRouteKeepsMeshPolicySettings(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	ext := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}
	edit := routes.Edit{
		Policy: "pay", Namespace: ns,
		Backends:    routes.Backends([]string{"checkout"}, []meshv1alpha1.Rollout{rolloutFor("checkout")}),
		Settings:    &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}, Filters: []gwv1.HTTPRouteFilter{ext}},
		OwnedFilter: func(name string) bool { return name == "pay-retry" },
	}
	carrying, err := routes.Sync(ctx, k8s, edit)
	if err != nil || len(carrying) != 1 {
		t.Fatalf("Sync: %v, carrying %v", err, carrying)
	}

	s.Stable.Weight, s.Canary.Weight = 50, 50
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	rt := getRoute(t, ns)
	want := wantSplitRule(50, 50, ext)
	want.Timeouts = &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}
	assertSameJSON(t, "split rule after the Rollout re-applied", rt.Spec.Rules, []gwv1.HTTPRouteRule{want})

	edit.Settings = nil
	if _, err := routes.Sync(ctx, k8s, edit); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatal(err)
	}
	rt = getRoute(t, ns)
	assertSameJSON(t, "split rule after the policy left", rt.Spec.Rules, []gwv1.HTTPRouteRule{wantSplitRule(50, 50)})
	if v, ok := rt.Annotations[meshv1alpha1.MeshPolicyRouteAnnotation]; ok {
		t.Errorf("route still marked %q", v)
	}
}

func rolloutFor(service string) meshv1alpha1.Rollout {
	ro := meshv1alpha1.Rollout{}
	ro.Name = service
	ro.Spec.Service.Name = service
	return ro
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
