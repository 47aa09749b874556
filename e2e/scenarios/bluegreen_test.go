package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
)

// Blue-green with preview checks: the new version runs beside the old one, reachable only on
// a preview host (a route of the user's to the preview Service); testers' traffic there is
// judged by a gate on the preview backend's Traefik metrics; after two passing checks all
// traffic switches at once. Users on the main host see only v1 until the switch, then only v2.
func TestBlueGreenWithPreviewChecks(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "bluegreen")
	if err != nil {
		t.Fatal(err)
	}
	preview := "shop-preview"
	previewHost := "preview." + cluster.DemoHost(ns)
	// The preview gate: success rate of requests Traefik sends to the preview Service.
	backend := fmt.Sprintf(`service=~".*-svc-{{ .Namespace }}-%s-[0-9]+@kubernetesgateway"`, preview)
	gate := &meshv1alpha1.HealthGate{ObjectMeta: metav1.ObjectMeta{Name: "preview-success-rate", Namespace: ns}, Spec: meshv1alpha1.HealthGateSpec{
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: []string{cl.PrometheusURL}},
		Metrics: []meshv1alpha1.HealthMetric{{Name: "preview-success-rate",
			Query:          `sum(rate(traefik_service_requests_total{` + backend + `,code!~"5.."}[{{ .Window }}])) / sum(rate(traefik_service_requests_total{` + backend + `}[{{ .Window }}]))`,
			ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.95)}}},
		Window: &metav1.Duration{Duration: 5 * time.Second},
	}}
	r := cluster.DemoRollout(ns)
	r.Spec.Strategy = meshv1alpha1.RolloutStrategy{BlueGreen: &meshv1alpha1.BlueGreenStrategy{
		PreviewService: preview, PrePromotionChecks: ptr.To(int32(2)), AutoPromote: true,
		ScaleDownDelay: &metav1.Duration{Duration: 5 * time.Second},
	}}
	r.Spec.Analysis.HealthGates = []meshv1alpha1.LocalObjectReference{{Name: gate.Name}}
	r.Spec.Analysis.MinSamples = nil // no dataPlane on a custom gate: the sample count is not known
	parent := gatewayv1.Namespace("gateways")
	previewRoute := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop-preview", Namespace: ns}, Spec: gatewayv1.HTTPRouteSpec{
		CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge", Namespace: &parent}}},
		Hostnames:       []gatewayv1.Hostname{gatewayv1.Hostname(previewHost)},
		Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(preview), Port: ptr.To(gatewayv1.PortNumber(80))}}}}}},
	}}
	for _, o := range []client.Object{cluster.DemoApp(ns, "v1"), gate, r, previewRoute} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	v1 := waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy).Status.StableRevision
	users := traffic(t, ns)
	waitTraffic(t, users, "v1 answering users", func(c load.Counts) bool { return c.ByVersion["v1"] >= 40 })
	testers := &load.Generator{URL: cl.GatewayURL + "/", Host: previewHost, RPS: 20, Workers: 4, Client: defaultClient()}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { testers.Run(tctx); close(done) }()
	defer func() { cancel(); <-done }()

	before := users.Snapshot()
	setVersion(t, ns, "v2")
	waitTraffic(t, testers, "v2 answering on the preview host", func(c load.Counts) bool { return c.ByVersion["v2"] >= 20 })
	if d := users.Snapshot().Since(before); d.ByVersion["v2"] > 0 {
		t.Errorf("users saw v2 before the switch: %+v", d)
	}
	got := waitRollout(t, ns, "the switch to v2", 3*time.Minute, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 })
	if got.Status.StableSlot != meshv1alpha1.SlotB || got.Status.AbortReason != "" {
		t.Errorf("after the switch: stable %s abort %q", got.Status.StableSlot, got.Status.AbortReason)
	}
	afterPromotion(t, users, "v2")
}
