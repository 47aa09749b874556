package controllers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// wantRules compares the route's rules, as stored by the API server (defaults included), with
// the YAML of the rules expected.
func wantRules(t *testing.T, c *cluster, route, want string) {
	t.Helper()
	rt := c.route(t, route)
	got, err := json.Marshal(rt.Spec.Rules)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := yaml.YAMLToJSON([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal(wantJSON, &w)
	gy, _ := yaml.Marshal(g)
	wy, _ := yaml.Marshal(w)
	if string(gy) != string(wy) {
		t.Errorf("route %s rules:\n%s\nwant:\n%s", route, gy, wy)
	}
}

func TestBlueGreenRouteAndPreview(t *testing.T) {
	c := newCluster(t, "bluegreen")
	startManager(t, &gates{})
	c.target(t, "web")
	ro := canaryRollout(c.ns, "web")
	ro.Spec.Strategy = meshv1alpha1.RolloutStrategy{BlueGreen: &meshv1alpha1.BlueGreenStrategy{
		PreviewService: "web-preview", PrePromotionChecks: ptrTo(int32(2)), ScaleDownDelay: &metav1.Duration{Duration: time.Second},
	}}
	create(t, ro)
	c.healthyOn(t, "web", meshv1alpha1.SlotA)
	c.setImage(t, "web", "demo:v2")
	r := c.waitRollout(t, "web", "waiting for promote", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && condIs(r, meshv1alpha1.ConditionReconciling, "WaitingForPromote")
	})
	if r.Status.Analysis.StepPassed < 2 {
		t.Errorf("pre-promotion checks %d, want 2", r.Status.Analysis.StepPassed)
	}
	preview := &corev1.Service{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: "web-preview"}, preview); err != nil {
		t.Fatal(err)
	}
	if preview.Spec.Selector[rollout.LabelSlot] != "b" {
		t.Errorf("preview selects %v, want slot b", preview.Spec.Selector)
	}
	split := func(a, b int) string {
		return `
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs:
  - {group: "", kind: Service, name: web-a, port: 80, weight: ` + itoa(a) + `}
  - {group: "", kind: Service, name: web-b, port: 80, weight: ` + itoa(b) + `}
`
	}
	wantRules(t, c, "web", split(100, 0))

	annotate(t, r, meshv1alpha1.ActionPromote)
	c.healthyOn(t, "web", meshv1alpha1.SlotB)
	wantRules(t, c, "web", split(0, 100))
}

func TestABHeaderMatchAndMirrorRoute(t *testing.T) {
	c := newCluster(t, "ab")
	startManager(t, &gates{})
	c.target(t, "shop")
	ro := canaryRollout(c.ns, "shop")
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{{SetWeight: ptrTo(int32(10))}, {Pause: &meshv1alpha1.PauseStep{}}}
	ro.Spec.Strategy.Canary.Match = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	ro.Spec.Strategy.Canary.Mirror = &meshv1alpha1.Mirror{Percent: 20}
	create(t, ro)
	c.healthyOn(t, "shop", meshv1alpha1.SlotA)
	wantRules(t, c, "shop", `
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs:
  - {group: "", kind: Service, name: shop-a, port: 80, weight: 100}
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 0}
`)
	c.setImage(t, "shop", "demo:v2")
	c.waitRollout(t, "shop", "paused at 10%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && r.Status.CanaryWeight == 10 && condIs(r, meshv1alpha1.ConditionTrafficApplied, "")
	})
	wantRules(t, c, "shop", `
- name: sluice-match-0
  matches:
  - path: {type: PathPrefix, value: /}
    headers: [{type: Exact, name: x-canary, value: always}]
  backendRefs:
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 1}
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  filters:
  - type: RequestMirror
    requestMirror:
      backendRef: {group: "", kind: Service, name: shop-b, port: 80}
      percent: 20
  backendRefs:
  - {group: "", kind: Service, name: shop-a, port: 80, weight: 90}
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 10}
`)
}

func ptrTo[T any](v T) *T { return &v }

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
