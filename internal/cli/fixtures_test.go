package cli_test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// fixture writes the objects of one situation into a namespace of its own, with status
// written through the status subresource as the manager (and the kubelet, and the gateway)
// would have written it. No controller runs: the API server holds exactly what the test says.
type fixture struct {
	t   *testing.T
	ctx context.Context
	ns  string
}

func newFixture(t *testing.T, ns string) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), ns: ns}
	f.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	return f
}

func (f *fixture) create(obj client.Object) {
	f.t.Helper()
	if err := env.Client.Create(f.ctx, obj); err != nil {
		f.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func (f *fixture) writeStatus(obj client.Object) {
	f.t.Helper()
	if err := env.Client.Status().Update(f.ctx, obj); err != nil {
		f.t.Fatalf("writing the status of %T %s: %v", obj, obj.GetName(), err)
	}
}

// at is a time relative to the tests' clock.
func at(d time.Duration) *metav1.Time {
	t := metav1.NewTime(now.Add(d))
	return &t
}

func cond(typ string, status bool, reason, msg string) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: 1, LastTransitionTime: *at(-time.Hour)}
}

func podTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
}

// target creates the Deployment a Rollout releases and returns the revision of its template as
// the manager computes it (from the template the API server stored, defaults included).
func (f *fixture) target(name, image string) string {
	f.t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image)},
	}
	f.create(d)
	return rollout.Revision(&d.Spec.Template)
}

// pod is a slot pod and how the kubelet reports it.
type pod struct {
	suffix   string
	ready    bool
	restarts int32
	revision string // "" is the slot's
}

// slot creates a slot Deployment at rev with its status and its pods.
func (f *fixture) slot(ro string, s meshv1alpha1.Slot, rev, image string, replicas, ready int32, pods ...pod) {
	f.t.Helper()
	name := ro + "-" + string(s)
	labels := map[string]string{"app": ro, rollout.LabelRollout: ro, rollout.LabelSlot: string(s)}
	tmpl := podTemplate(ro, image)
	for k, v := range labels {
		tmpl.Labels[k] = v
	}
	tmpl.Labels[rollout.LabelRevision] = rev
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: map[string]string{rollout.LabelRollout: ro},
			Annotations: map[string]string{rollout.AnnotationRevision: rev}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	}
	f.create(d)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready}
	f.writeStatus(d)
	for _, p := range pods {
		podRev := rev
		if p.revision != "" {
			podRev = p.revision
		}
		po := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-" + p.suffix, Namespace: f.ns, Labels: map[string]string{
				"app": ro, rollout.LabelRollout: ro, rollout.LabelSlot: string(s), rollout.LabelRevision: podRev}},
			Spec: tmpl.Spec,
		}
		f.create(po)
		readyStatus := corev1.ConditionFalse
		if p.ready {
			readyStatus = corev1.ConditionTrue
		}
		po.Status = corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: readyStatus}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: image, Ready: p.ready, RestartCount: p.restarts}}}
		f.writeStatus(po)
	}
}

// route creates an HTTPRoute with one rule of weighted backends (named when rule != "") and,
// with accepted, every parent's Accepted=True at the route's generation (as a gateway writes).
func (f *fixture) route(name, rule string, accepted bool, backends ...backend) *gatewayv1.HTTPRoute {
	f.t.Helper()
	var refs []gatewayv1.HTTPBackendRef
	for _, b := range backends {
		refs = append(refs, gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(b.service), Port: ptr.To(gatewayv1.PortNumber(80))},
			Weight:                 ptr.To(b.weight)}})
	}
	r := gatewayv1.HTTPRouteRule{BackendRefs: refs}
	if rule != "" {
		r.Name = ptr.To(gatewayv1.SectionName(rule))
	}
	parent := gatewayv1.ParentReference{Name: "edge", Namespace: ptr.To(gatewayv1.Namespace("gateways"))}
	rt := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
			Rules: []gatewayv1.HTTPRouteRule{r}},
	}
	f.create(rt)
	gen := rt.Generation
	if !accepted {
		gen-- // the gateway has not processed this generation yet
	}
	rt.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: parent, ControllerName: "example.com/gateway",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: gen, LastTransitionTime: *at(-time.Hour)}}}}
	f.writeStatus(rt)
	return rt
}

type backend struct {
	service string
	weight  int32
}

// rollout creates the Rollout, then writes st as its status (observedGeneration set to the
// Rollout's generation unless st says otherwise with -1).
func (f *fixture) rollout(ro *meshv1alpha1.Rollout, st *meshv1alpha1.RolloutStatus) *meshv1alpha1.Rollout {
	f.t.Helper()
	ro.Namespace = f.ns
	f.create(ro)
	if st == nil {
		return ro
	}
	ro.Status = *st
	if ro.Status.ObservedGeneration == 0 {
		ro.Status.ObservedGeneration = ro.Generation
	}
	f.writeStatus(ro)
	return ro
}

// gate creates a HealthGate with the given metrics (builtins read Traefik's metrics).
func (f *fixture) gate(name string, metrics ...meshv1alpha1.HealthMetric) {
	f.t.Helper()
	f.create(&meshv1alpha1.HealthGate{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec: meshv1alpha1.HealthGateSpec{
			Prometheus: meshv1alpha1.PrometheusSource{Addresses: []string{"http://prometheus.monitoring:9090"}},
			DataPlane:  "traefik", Metrics: metrics,
		},
	})
}

func canarySpec(target string, gates ...string) meshv1alpha1.RolloutSpec {
	spec := meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.TargetReference{Name: target},
		Service:   meshv1alpha1.ServiceSpec{Port: 80},
		TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{
			ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}}}},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{Steps: []meshv1alpha1.CanaryStep{
			{SetWeight: ptr.To(int32(5))},
			{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
			{Analysis: &meshv1alpha1.AnalysisStep{Checks: 3}},
			{SetWeight: ptr.To(int32(25))},
			{Analysis: &meshv1alpha1.AnalysisStep{Checks: 3}},
			{SetWeight: ptr.To(int32(50))},
			{Pause: &meshv1alpha1.PauseStep{}},
		}}},
	}
	if len(gates) == 0 {
		// Without gates, no analysis steps (the CRD requires spec.analysis for them).
		spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{
			{SetWeight: ptr.To(int32(20))},
			{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
			{SetWeight: ptr.To(int32(50))},
			{Pause: &meshv1alpha1.PauseStep{}},
		}
	} else {
		spec.Analysis = &meshv1alpha1.RolloutAnalysis{}
		for _, g := range gates {
			spec.Analysis.HealthGates = append(spec.Analysis.HealthGates, meshv1alpha1.LocalObjectReference{Name: g})
		}
	}
	return spec
}

func named(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
