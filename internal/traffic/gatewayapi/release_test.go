package gatewayapi

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Release of an existing route: the driven rule points at the apex Service again (weight 1, its
// per-backend filters kept), Sluice's A/B rule and mirror go, everything else stays byte for byte.
func TestReleaseExistingRoute(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	orig := getUnstructured(t, ns)
	origRules := rulesOf(t, orig)
	s := existingSplit(ns)
	s.MirrorPercent = 10
	s.Matches = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	if err := r.Release(ctx, s); err != nil {
		t.Fatalf("Release: %v", err)
	}
	got := getUnstructured(t, ns)
	if o := outsideRules(t, got); o != outsideRules(t, orig) {
		t.Errorf("fields outside spec.rules changed:\n%s", o)
	}
	rules := rulesOf(t, got)
	if len(rules) != 2 {
		t.Fatalf("rules = %s, want /api and /static", mustJSON(t, rules))
	}
	wantAPI := map[string]any{}
	for k, v := range origRules[0] {
		wantAPI[k] = v
	}
	wantAPI["backendRefs"] = []any{
		jsonMap(t, `{"group":"","kind":"Service","name":"checkout","port":80,"weight":1}`),
		origRules[0]["backendRefs"].([]any)[1], // legacy
	}
	assertSameJSON(t, "the /api rule handed back", rules[0], wantAPI)
	assertSameJSON(t, "the /static rule", rules[1], origRules[1])

	// Again: nothing to do, nothing written.
	if err := r.Release(ctx, s); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if again := getUnstructured(t, ns); again.GetResourceVersion() != got.GetResourceVersion() {
		t.Errorf("a second Release rewrote the route")
	}
	// A missing route is not an error.
	s.Existing = "gone"
	if err := r.Release(ctx, s); err != nil {
		t.Errorf("Release of a missing route: %v", err)
	}
}

// Release of a generated route: it keeps serving (parents and hostnames as they were) from the
// apex Service, loses the Rollout's UID label, and a Rollout of that name takes it back later;
// another Rollout's or a user's route is left alone.
func TestReleaseGeneratedRoute(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	s.Matches = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	before := getRoute(t, ns)

	other := s
	other.OwnerUID = "someone-else"
	if err := r.Release(ctx, other); err != nil {
		t.Fatalf("Release by another Rollout: %v", err)
	}
	if got := getRoute(t, ns); got.ResourceVersion != before.ResourceVersion {
		t.Errorf("another Rollout's Release changed the route")
	}

	if err := r.Release(ctx, s); err != nil {
		t.Fatalf("Release: %v", err)
	}
	got := getRoute(t, ns)
	apex := wantRef("checkout", 1)
	assertSameJSON(t, "spec after release", got.Spec, wantGeneratedSpec(gwv1.HTTPRouteRule{
		Name:        ptr.To(gwv1.SectionName(SplitRuleName)),
		Matches:     []gwv1.HTTPRouteMatch{{Path: wantRootPath()}},
		BackendRefs: []gwv1.HTTPBackendRef{apex},
	}))
	assertSameJSON(t, "labels after release", got.Labels, map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue, traffic.LabelRollout: "checkout"})
	if got.UID != before.UID {
		t.Errorf("the route was recreated")
	}
	if err := r.Release(ctx, s); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if again := getRoute(t, ns); again.ResourceVersion != got.ResourceVersion {
		t.Errorf("a second Release rewrote the route")
	}

	// The Rollout created again under the same name (a new UID) takes the released route back.
	again := s
	again.OwnerUID = "rollout-uid-again"
	if err := r.Apply(ctx, again); err != nil {
		t.Fatalf("Apply by the re-created Rollout: %v", err)
	}
	if got := getRoute(t, ns); got.Labels[traffic.LabelRolloutUID] != "rollout-uid-again" {
		t.Errorf("labels %v: the re-created Rollout did not take the route back", got.Labels)
	}
	// ... but a different Rollout (another name) may not.
	stranger := again
	stranger.OwnerName, stranger.OwnerUID = "stranger", "uid-stranger"
	if err := r.Apply(ctx, stranger); !errors.Is(err, ErrRouteNotOwned) {
		t.Errorf("Apply by another Rollout = %v, want ErrRouteNotOwned", err)
	}
}

// A route generated before the labels (controlled through an ownerReference) is the Rollout's;
// the next Apply replaces the ownerReference with the labels.
func TestGeneratedRouteFromBeforeTheLabels(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	s := generatedSplit(ns)
	old := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns, Labels: map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "Rollout", Name: "checkout", UID: s.OwnerUID, Controller: ptr.To(true)}}},
		Spec: wantGeneratedSpec(wantSplitRule(100, 0)),
	}
	old.TypeMeta = metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"}
	// As the previous version wrote it: server-side apply by sluice.
	u, err := toUnstructured(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(traffic.FieldManager), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	if err := New(k8s).Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := getRoute(t, ns)
	if len(got.OwnerReferences) != 0 || got.Labels[traffic.LabelRolloutUID] != string(s.OwnerUID) {
		t.Errorf("ownerReferences %+v labels %v: want the labels instead of the ownerReference", got.OwnerReferences, got.Labels)
	}
}

func toUnstructured(obj any) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}
