package statusfixtures

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/gates"
	"github.com/sluice-mesh/sluice/webhooks"
)

const namespace = "shop"

// t0 is when every fixture's story starts; times in status are t0 plus simulated time.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// prometheus answers gate queries the way a Prometheus scraping the Traefik Gateway would, with
// fixed numbers: enough to run the real evaluation (internal/gates) and get its verdicts and
// messages.
type prometheus struct {
	canaryService string
	samples       float64 // requests the canary served in the window
	canary        float64 // success rate of the canary
	stable        float64 // success rate of the stable slot
	p99           float64 // seconds
	unreachable   bool
}

var prometheusAddresses = []string{"http://prometheus.monitoring:9090", "http://prometheus-edge.monitoring:9090"}

func (p *prometheus) Query(_ context.Context, q string, _ time.Time) (gates.Answer, error) {
	if p.unreachable {
		return gates.Answer{}, &gates.UnreachableError{Attempts: []gates.AddressError{
			{Address: prometheusAddresses[0], Err: errors.New("dial tcp 10.96.41.7:9090: connect: connection refused")},
			{Address: prometheusAddresses[1], Err: errors.New("context deadline exceeded (timeout 5s)")},
		}}
	}
	var v float64
	switch {
	case strings.Contains(q, "increase("):
		v = p.samples
	case strings.Contains(q, "histogram_quantile"):
		v = p.p99
	case strings.Contains(q, "-"+p.canaryService+"-"):
		v = p.canary
	default:
		v = p.stable
	}
	return gates.Answer{Value: model.Vector{&model.Sample{Value: model.SampleValue(v)}}, Address: prometheusAddresses[0]}, nil
}

// The Prometheus answers of each verdict.
func passing(canary string) *prometheus {
	return &prometheus{canaryService: canary, samples: 1532, canary: 0.9987, stable: 0.9981, p99: 0.212}
}

func failing(canary string) *prometheus {
	return &prometheus{canaryService: canary, samples: 1490, canary: 0.912, stable: 0.9981, p99: 0.231}
}

func tooFewSamples(canary string) *prometheus {
	return &prometheus{canaryService: canary, samples: 12, canary: 1, stable: 0.9981, p99: 0.198}
}

func unreachable(canary string) *prometheus {
	return &prometheus{canaryService: canary, unreachable: true}
}

// successRateSpec is the Traefik success-rate gate of config/samples.
func successRateSpec() meshv1alpha1.HealthGateSpec {
	return meshv1alpha1.HealthGateSpec{
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: append([]string(nil), prometheusAddresses...), Timeout: &metav1.Duration{Duration: 5 * time.Second}},
		DataPlane:  meshv1alpha1.DataPlaneTraefik,
		Metrics: []meshv1alpha1.HealthMetric{
			{Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate, ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)}},
			{Name: "no-worse-than-stable", Builtin: meshv1alpha1.BuiltinRequestSuccessRate, CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: 0.01}},
		},
		NoData: meshv1alpha1.NoDataInconclusive,
	}
}

// p99Spec is a latency gate with a custom query.
func p99Spec() meshv1alpha1.HealthGateSpec {
	return meshv1alpha1.HealthGateSpec{
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: append([]string(nil), prometheusAddresses...), Timeout: &metav1.Duration{Duration: 3 * time.Second}},
		DataPlane:  meshv1alpha1.DataPlaneTraefik,
		Metrics: []meshv1alpha1.HealthMetric{{
			Name:           "p99",
			Query:          `histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=~".*-svc-{{ .Namespace }}-{{ .CanaryService }}-[0-9]+@kubernetesgateway"}[{{ .Window }}])))`,
			ThresholdRange: &meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)},
		}},
	}
}

func gate(name string, spec meshv1alpha1.HealthGateSpec, generation int64) *meshv1alpha1.HealthGate {
	g := &meshv1alpha1.HealthGate{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "HealthGate"},
		ObjectMeta: objectMeta(name, generation),
		Spec:       spec,
	}
	must(webhooks.HealthGateDefaulter{}.Default(context.Background(), g))
	return g
}

// objectMeta is what the API server keeps of a created object (less managedFields).
func objectMeta(name string, generation int64) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: namespace, Generation: generation,
		UID:               types.UID("5b0f3c7e-" + strings.Repeat("0", 4) + "-4a1d-9e2f-" + uidSuffix(name)),
		ResourceVersion:   "48213",
		CreationTimestamp: metav1.NewTime(t0.Add(-24 * time.Hour)),
		Labels:            map[string]string{"app.kubernetes.io/part-of": "shop"},
	}
}

// uidSuffix is a stable 12-hex-digit suffix per name, so each fixture has its own UID.
func uidSuffix(name string) string {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	const hex = "0123456789abcdef"
	b := make([]byte, 12)
	for i := range b {
		b[i] = hex[h&15]
		h >>= 4
	}
	return string(b)
}

func must(err error) {
	if err != nil {
		panic(err) // the inputs are constants of this package
	}
}

// reconcileGate does to a standalone gate's status what the HealthGate reconciler does
// (controllers/healthgate_controller.go): validation, then the verdict of a finished
// evaluation (res) or "Evaluating" while the first one of a generation runs.
func reconcileGate(g *meshv1alpha1.HealthGate, now time.Time, res *gates.Result) {
	st := &g.Status
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		c := metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: g.Generation, LastTransitionTime: metav1.NewTime(now)}
		if old := meta.FindStatusCondition(st.Conditions, typ); old != nil && old.Status == s {
			c.LastTransitionTime = old.LastTransitionTime
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if err := gates.ValidateSpec(&g.Spec); err != nil {
		set(meshv1alpha1.ConditionReady, false, meshv1alpha1.ReasonInvalidSpec, err.Error())
		set(meshv1alpha1.ConditionStalled, true, meshv1alpha1.ReasonInvalidSpec, err.Error())
	} else {
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		switch {
		case g.Spec.Target == nil:
			st.Verdict, st.Metrics, st.LastEvaluation, st.Address = "", nil, nil, ""
			set(meshv1alpha1.ConditionReady, true, "Valid", "queries are valid; the Rollouts that use this gate evaluate it (set spec.target to evaluate it on its own)")
		case res != nil:
			last := metav1.NewTime(now)
			st.Verdict, st.Metrics, st.LastEvaluation, st.Address = res.Verdict, res.Metrics, &last, res.Address
			set(meshv1alpha1.ConditionReady, res.Verdict == meshv1alpha1.VerdictPass, string(res.Verdict), res.Message)
		case st.LastEvaluation == nil || st.ObservedGeneration != g.Generation:
			set(meshv1alpha1.ConditionReady, false, "Evaluating", "first evaluation of this generation under way")
		}
	}
	meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionReconciling)
	st.ObservedGeneration = g.Generation
}

// evaluateGate runs the real evaluation of a standalone gate against canned answers.
func evaluateGate(g *meshv1alpha1.HealthGate, p *prometheus) gates.Result {
	t := g.Spec.Target
	return gates.Evaluate(context.Background(), p, &g.Spec, gates.Target{
		Namespace: g.Namespace, Service: t.Service, CanaryService: t.CanaryService, StableService: t.StableService,
		Window: g.Spec.GetWindow(g.Spec.GetInterval()), MinSamples: ptr.Deref(t.MinSamples, 0),
	})
}

// HealthGates returns a gate evaluated on its own with each verdict, plus the states around.
func HealthGates() ([]Fixture, error) {
	standalone := func(generation int64) *meshv1alpha1.HealthGate {
		spec := successRateSpec()
		spec.Interval = &metav1.Duration{Duration: 30 * time.Second}
		spec.Window = &metav1.Duration{Duration: time.Minute}
		spec.Target = &meshv1alpha1.GateTarget{Service: "checkout", CanaryService: "checkout-b", StableService: "checkout-a", MinSamples: ptr.To(int32(100))}
		return gate("checkout-success-rate", spec, generation)
	}
	evaluated := func(p *prometheus) *meshv1alpha1.HealthGate {
		g := standalone(1)
		reconcileGate(g, t0, nil)
		res := evaluateGate(g, p)
		reconcileGate(g, t0.Add(2*time.Second), &res)
		return g
	}
	var out []Fixture
	add := func(name string, g *meshv1alpha1.HealthGate) {
		out = append(out, Fixture{Kind: "HealthGate", Name: name, Object: g})
	}

	add("no-status", standalone(1))

	g := standalone(1)
	reconcileGate(g, t0, nil)
	add("evaluating", g)

	add("pass", evaluated(passing("checkout-b")))
	add("fail", evaluated(failing("checkout-b")))
	add("inconclusive", evaluated(tooFewSamples("checkout-b")))
	add("unreachable", evaluated(unreachable("checkout-b")))

	// The window is changed in Git; the controller has not seen generation 2 yet.
	g = evaluated(passing("checkout-b"))
	g.Generation = 2
	g.Spec.Window = &metav1.Duration{Duration: 2 * time.Minute}
	add("not-observed", g)

	g = gate("success-rate", successRateSpec(), 1)
	reconcileGate(g, t0, nil)
	add("valid-without-target", g)

	// A query that passes the CRD's schema but not the controller's template check.
	spec := p99Spec()
	spec.Metrics[0].Query = strings.Replace(spec.Metrics[0].Query, "{{ .CanaryService }}", "{{ .Canary }}", 1)
	g = gate("p99-latency", spec, 1)
	reconcileGate(g, t0, nil)
	if meta.FindStatusCondition(g.Status.Conditions, meshv1alpha1.ConditionStalled) == nil {
		return nil, errors.New("healthgate invalid-spec: the controller's validation accepts the query; pick another mistake")
	}
	add("invalid-spec", g)
	return out, nil
}
