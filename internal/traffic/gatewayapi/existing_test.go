package gatewayapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// userRoute is the route as it lives in the user's Git repository.
const userRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: checkout
  namespace: NS
  labels: {app: checkout}
  annotations: {team.example.com/owner: payments}
spec:
  parentRefs: [{name: edge, namespace: gateways}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-env, value: prod}]}
    backendRefs:
    - {name: checkout, port: 80, weight: 1}
    - {name: legacy, port: 80, weight: 0}
    timeouts: {request: 10s}
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static, port: 8080}]
`

// gitopsApply server-side applies the user's manifest as a GitOps tool would.
func gitopsApply(ctx context.Context, ns string, force bool) error {
	u := &unstructured.Unstructured{}
	data := strings.ReplaceAll(userRoute, "namespace: NS", "namespace: "+ns)
	if err := yamlInto(data, u); err != nil {
		return err
	}
	opts := []client.ApplyOption{client.FieldOwner("gitops")}
	if force {
		opts = append(opts, client.ForceOwnership)
	}
	return k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...)
}

// outsideRules is the route without the fields any write changes and without spec.rules.
func outsideRules(t *testing.T, u *unstructured.Unstructured) string {
	t.Helper()
	c := u.DeepCopy()
	for _, f := range []string{"resourceVersion", "generation", "managedFields"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "spec", "rules")
	return mustJSON(t, c.Object)
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) []map[string]any {
	t.Helper()
	raw, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		t.Fatalf("spec.rules: %v", err)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i] = r.(map[string]any)
	}
	return out
}

// jsonMap is a literal JSON object of the expectations.
func jsonMap(t *testing.T, s string) any {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(`{"apiVersion":"v1","kind":"X","v":` + s + `}`)); err != nil {
		t.Fatalf("expectation %s: %v", s, err)
	}
	return u.Object["v"]
}

func TestExistingRoute(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	orig := getUnstructured(t, ns)
	origOutside := outsideRules(t, orig)
	origRules := rulesOf(t, orig)
	apiRule, staticRule := origRules[0], origRules[1]

	s := existingSplit(ns)
	s.MirrorPercent = 10
	s.Matches = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := getUnstructured(t, ns)
	if o := outsideRules(t, got); o != origOutside {
		t.Errorf("fields outside spec.rules changed:\n--- got\n%s\n--- want\n%s", o, origOutside)
	}
	rules := rulesOf(t, got)
	if len(rules) != 3 {
		t.Fatalf("rules = %s, want A/B, /api, /static", mustJSON(t, rules))
	}
	headerModifier := apiRule["filters"].([]any)[0]
	legacy := apiRule["backendRefs"].([]any)[1]
	mirror := jsonMap(t, `{"type":"RequestMirror","requestMirror":{"backendRef":{"group":"","kind":"Service","name":"checkout-b","port":80},"percent":10}}`)
	wantAPI := map[string]any{
		"matches":  apiRule["matches"],
		"filters":  []any{headerModifier, mirror},
		"timeouts": apiRule["timeouts"],
		"backendRefs": []any{
			jsonMap(t, `{"group":"","kind":"Service","name":"checkout-a","port":80,"weight":80}`),
			jsonMap(t, `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":20}`),
			legacy,
		},
	}
	assertSameJSON(t, "/api rule", rules[1], wantAPI)
	wantAB := map[string]any{
		"name": "sluice-match-0",
		"matches": jsonMap(t, `[{"path":{"type":"PathPrefix","value":"/api"},
			"headers":[{"type":"Exact","name":"x-canary","value":"always"}]}]`),
		"filters":     []any{headerModifier},
		"timeouts":    apiRule["timeouts"],
		"backendRefs": jsonMap(t, `[{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":1}]`),
	}
	assertSameJSON(t, "A/B rule", rules[0], wantAB)
	assertSameJSON(t, "/static rule", rules[2], staticRule)
	assertManagers(t, got, "gitops/Apply", "sluice/Update")

	// Unchanged split: no write.
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("repeated Apply: %v", err)
	}
	if again := getUnstructured(t, ns); again.GetResourceVersion() != got.GetResourceVersion() {
		t.Errorf("an unchanged split rewrote the route")
	}

	// All to the canary, mirror off: only the weights change and the mirror goes.
	s.Stable.Weight, s.Canary.Weight, s.MirrorPercent = 0, 100, 0
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply 0/100: %v", err)
	}
	got = getUnstructured(t, ns)
	if o := outsideRules(t, got); o != origOutside {
		t.Errorf("fields outside spec.rules changed:\n--- got\n%s\n--- want\n%s", o, origOutside)
	}
	rules = rulesOf(t, got)
	wantAPI["filters"] = apiRule["filters"]
	wantAPI["backendRefs"] = []any{
		jsonMap(t, `{"group":"","kind":"Service","name":"checkout-a","port":80,"weight":0}`),
		jsonMap(t, `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":100}`),
		legacy,
	}
	assertSameJSON(t, "rules after 0/100", rules, []any{wantAB, wantAPI, staticRule})
	st, err := r.Observe(ctx, s)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	assertSameJSON(t, "observed weights", st.Weights, map[string]int32{"checkout-a": 0, "checkout-b": 100})
	if !st.MatchesApplied || st.MirrorPercent != 0 {
		t.Errorf("Observe = %+v, want matches applied and no mirror", st)
	}

	// The GitOps tool re-applies the manifest from Git. Sluice's merge patch made it the owner
	// of the atomic spec.rules, so a plain apply conflicts, and nothing changes.
	err = gitopsApply(ctx, ns, false)
	if !apierrors.IsConflict(err) {
		t.Fatalf("GitOps re-apply without force = %v, want a Conflict", err)
	}
	t.Logf("GitOps apply without force: %v", err)
	assertContains(t, "conflict", err.Error(), `conflict with "sluice"`, ".spec.rules")
	if again := getUnstructured(t, ns); again.GetResourceVersion() != got.GetResourceVersion() {
		t.Errorf("the conflicting apply changed the route")
	}

	// With force (as Argo CD with ServerSideApply=true and Flux apply) Git wins: the rules are the
	// user's again, Observe sees it, and the next Apply puts the split back.
	if err := gitopsApply(ctx, ns, true); err != nil {
		t.Fatalf("GitOps re-apply with force: %v", err)
	}
	reverted := getUnstructured(t, ns)
	assertSameJSON(t, "rules after the forced apply", rulesOf(t, reverted), origRules)
	assertManagers(t, reverted, "gitops/Apply")
	st, err = r.Observe(ctx, s)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	assertSameJSON(t, "observed weights after revert", st.Weights, map[string]int32{"checkout": 1})
	if st.MatchesApplied {
		t.Errorf("MatchesApplied after the revert, want false")
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply after revert: %v", err)
	}
	assertSameJSON(t, "rules re-applied", rulesOf(t, getUnstructured(t, ns)), []any{wantAB, wantAPI, staticRule})
}

// assertManagers checks the field managers (manager/operation) of the object.
func assertManagers(t *testing.T, u *unstructured.Unstructured, want ...string) {
	t.Helper()
	var got []string
	for _, mf := range u.GetManagedFields() {
		got = append(got, mf.Manager+"/"+string(mf.Operation))
	}
	assertSameJSON(t, "managedFields managers", got, want)
}

func TestExistingRouteErrors(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)

	err := r.Apply(ctx, existingSplit(ns))
	if !errors.Is(err, ErrRouteNotFound) {
		t.Errorf("Apply on a missing route = %v, want ErrRouteNotFound", err)
	} else {
		assertContains(t, "error", err.Error(), ns+"/checkout")
	}

	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	s := existingSplit(ns)
	s.ApexService = "payments"
	s.Stable.Service, s.Canary.Service = "payments-a", "payments-b"
	before := getUnstructured(t, ns)
	err = r.Apply(ctx, s)
	if !errors.Is(err, ErrNoDrivenRule) {
		t.Fatalf("Apply with no driven rule = %v, want ErrNoDrivenRule", err)
	}
	assertContains(t, "error", err.Error(), ns+"/checkout", "payments or payments-a or payments-b")
	if after := getUnstructured(t, ns); after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("a failed Apply changed the route")
	}
}

// TestExistingRouteConflict: a change of spec.rules between Sluice's read and its write fails
// the write with a Conflict (never a silent overwrite; the caller retries with a fresh read),
// while a change elsewhere in the route (an annotation, as a MeshPolicy publishes its settings)
// does not hold the write up.
func TestExistingRouteConflict(t *testing.T) {
	cases := []struct {
		name         string
		racing       func(u *unstructured.Unstructured)
		wantConflict bool
	}{
		{
			name:   "an annotation changes",
			racing: func(u *unstructured.Unstructured) { u.SetAnnotations(map[string]string{"touched": "yes"}) },
		},
		{
			name: "the rules change",
			racing: func(u *unstructured.Unstructured) {
				rules := rulesOf(t, u)
				rules[1]["matches"] = []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/assets"}}}
				raw := make([]any, len(rules))
				for i := range rules {
					raw[i] = rules[i]
				}
				if err := unstructured.SetNestedSlice(u.Object, raw, "spec", "rules"); err != nil {
					t.Fatal(err)
				}
				u.SetAnnotations(map[string]string{"touched": "yes"})
			},
			wantConflict: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns := namespace(t)
			if err := gitopsApply(ctx, ns, false); err != nil {
				t.Fatalf("user's apply: %v", err)
			}
			// Someone else writes just before Sluice's patch reaches the server.
			racing := interceptor.NewClient(k8s, interceptor.Funcs{
				Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
					other := getUnstructured(t, ns)
					tc.racing(other)
					if err := c.Update(ctx, other); err != nil {
						t.Fatalf("concurrent update: %v", err)
					}
					return c.Patch(ctx, obj, patch, opts...)
				},
			})
			err := New(racing).Apply(ctx, existingSplit(ns))
			got := getUnstructured(t, ns)
			if got.GetAnnotations()["touched"] != "yes" {
				t.Errorf("the racing write was lost")
			}
			st, obsErr := New(k8s).Observe(ctx, existingSplit(ns))
			if obsErr != nil {
				t.Fatal(obsErr)
			}
			if !tc.wantConflict {
				if err != nil {
					t.Fatalf("Apply racing an annotation write = %v, want success", err)
				}
				assertSameJSON(t, "weights", st.Weights, map[string]int32{"checkout-a": 80, "checkout-b": 20})
				return
			}
			if !apierrors.IsConflict(err) {
				t.Fatalf("Apply racing a rules write = %v, want a Conflict", err)
			}
			assertSameJSON(t, "weights after the conflict (the stale write did not land)", st.Weights, map[string]int32{"checkout": 1})
			if err := New(k8s).Apply(ctx, existingSplit(ns)); err != nil {
				t.Fatalf("Apply after the conflict: %v", err)
			}
			if m := rulesOf(t, getUnstructured(t, ns))[1]["matches"]; !strings.Contains(mustJSON(t, m), "/assets") {
				t.Errorf("the racing rules change was lost: %s", mustJSON(t, m))
			}
		})
	}
}
