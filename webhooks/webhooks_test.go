package webhooks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestRolloutDefaultsAreWrittenFromTheGetters(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := &meshv1alpha1.Rollout{}
	mustYAML(t, `
metadata: {name: web}
spec:
  targetRef: {name: web}
  service: {port: 80}
  trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}, {kind: Service, name: web}]}}
  strategy: {canary: {stepWeight: 20, match: [{headers: [{name: x-canary, value: "1"}]}]}}
  analysis: {healthGates: [{name: success-rate}]}
`, r)
	r.Namespace = ns
	if err := env.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	s := r.Spec
	checks := []struct {
		field     string
		got, want any
	}{
		{"targetRef.apiVersion", s.TargetRef.APIVersion, "apps/v1"},
		{"targetRef.kind", s.TargetRef.Kind, "Deployment"},
		{"parentRefs[0].kind", s.TrafficRouting.GatewayAPI.ParentRefs[0].Kind, "Gateway"},
		{"parentRefs[0].group", *s.TrafficRouting.GatewayAPI.ParentRefs[0].Group, meshv1alpha1.GatewayAPIGroup},
		{"parentRefs[1].group", *s.TrafficRouting.GatewayAPI.ParentRefs[1].Group, ""},
		{"canary.maxWeight", *s.Strategy.Canary.MaxWeight, meshv1alpha1.DefaultMaxWeight},
		{"canary.scaleDownDelay", s.Strategy.Canary.ScaleDownDelay.Duration, meshv1alpha1.DefaultScaleDownDelay},
		{"canary.match[0].headers[0].type", s.Strategy.Canary.Match[0].Headers[0].Type, meshv1alpha1.MatchExact},
		{"analysis.interval", s.Analysis.Interval.Duration, meshv1alpha1.DefaultAnalysisInterval},
		{"analysis.failureLimit", *s.Analysis.FailureLimit, meshv1alpha1.DefaultFailureLimit},
		{"analysis.minSamples", *s.Analysis.MinSamples, int32(0)},
		{"analysis.onUnreachable", s.Analysis.OnUnreachable, meshv1alpha1.OnUnreachableHold},
		{"analysis.maxHold", s.Analysis.MaxHold.Duration, meshv1alpha1.DefaultMaxHold},
		{"analysis.inconclusiveLimit", *s.Analysis.InconclusiveLimit, meshv1alpha1.DefaultInconclusiveLimit},
		{"trafficRouting.gatewayAPI.probe.mode", s.TrafficRouting.GatewayAPI.Probe.Mode, meshv1alpha1.ProbeBestEffort},
		{"progressDeadline", s.ProgressDeadline.Duration, meshv1alpha1.DefaultProgressDeadline},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("spec.%s = %v, want %v", c.field, c.got, c.want)
		}
	}
}

func TestRolloutWarnsAboutMissingReferencesUntilTheyExist(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := sample[*meshv1alpha1.Rollout](t, "rollout_canary", &meshv1alpha1.Rollout{})
	r.Namespace = ns
	warnings.take()
	if err := warnClient.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(warnings.take(), "\n")
	for _, want := range []string{
		"spec.targetRef: Deployment " + ns + "/checkout does not exist",
		"spec.analysis.healthGates[0]: HealthGate " + ns + "/success-rate does not exist",
		"spec.analysis.healthGates[1]: HealthGate " + ns + "/p99-latency does not exist",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}

	// Once the references exist, an update raises no warning.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "checkout"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sluice.dev/demo-app:v1"}}},
		},
	}}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	for _, gate := range []string{"success-rate", "p99-latency"} {
		g := sample[*meshv1alpha1.HealthGate](t, "healthgate_success_rate", &meshv1alpha1.HealthGate{})
		g.Name, g.Namespace = gate, ns
		if err := env.Client.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	warnings.take()
	r.Spec.Paused = true
	if err := warnClient.Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("warnings with every reference present: %q", w)
	}
}

func TestHealthGateRejectsABrokenTemplateNamingTheMetric(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cases := []struct{ name, query, want string }{
		{"unknown variable", `rate(x{service="{{ .Svc }}"}[1m])`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": template does not expand`},
		{"unclosed action", `rate(x{service="{{ .Service"}[1m])`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": template does not parse`},
		{"PromQL syntax error", `sum(rate(x{service="{{ .Service }}"}[1m])`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": query does not parse: unclosed left parenthesis`},
		{"PromQL parse error", `sum(rate(x{service="{{ .Service }}"}))`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": query does not parse: 1:10: parse error: expected type range vector in call to function "rate", got instant vector`},
		{"variable outside quotes", `rate(x{service={{ .Service }}}[1m])`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": template: {{ .Service }} must be inside the quoted value of a label matcher`},
		{"range vector result", `rate(x{service="{{ .Service }}"}[1m])[5m:]`, `spec.metrics[1].query: Invalid value: "metric \"p99\"": query returns a range vector`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := sample[*meshv1alpha1.HealthGate](t, "healthgate_success_rate", &meshv1alpha1.HealthGate{})
			g.Namespace = ns
			g.Spec.Metrics[1] = meshv1alpha1.HealthMetric{Name: "p99", Query: tc.query, ThresholdRange: &meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)}}
			err := env.Client.Create(ctx, g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	g := sample[*meshv1alpha1.HealthGate](t, "healthgate_latency", &meshv1alpha1.HealthGate{})
	g.Namespace = ns
	if err := env.Client.Create(ctx, g); err != nil {
		t.Fatalf("a valid template is rejected: %v", err)
	}
	if g.Spec.NoData != meshv1alpha1.NoDataInconclusive || g.Spec.Prometheus.Timeout.Duration != 3*time.Second {
		t.Errorf("defaults: noData %q (want Inconclusive), timeout %v (want the sample's 3s kept)", g.Spec.NoData, g.Spec.Prometheus.Timeout)
	}
}

func TestHealthGateAcceptsEveryBuiltinOfEveryDataPlane(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, dp := range []meshv1alpha1.DataPlane{
		meshv1alpha1.DataPlaneTraefik, meshv1alpha1.DataPlaneIstio, meshv1alpha1.DataPlaneLinkerd,
		meshv1alpha1.DataPlaneEnvoy, meshv1alpha1.DataPlaneNginx,
	} {
		t.Run(string(dp), func(t *testing.T) {
			g := sample[*meshv1alpha1.HealthGate](t, "healthgate_success_rate", &meshv1alpha1.HealthGate{})
			g.Name, g.Namespace = "builtins-"+string(dp), ns
			g.Spec.DataPlane = dp
			g.Spec.Metrics = append(g.Spec.Metrics, meshv1alpha1.HealthMetric{
				Name: "p99", Builtin: meshv1alpha1.BuiltinRequestDurationP99, ThresholdRange: &meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)},
			})
			if err := env.Client.Create(ctx, g); err != nil {
				t.Fatalf("a gate of builtins is rejected: %v", err)
			}
		})
	}
}

func TestMeshPolicyDefaultsAndTargetWarnings(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	p := sample[*meshv1alpha1.MeshPolicy](t, "meshpolicy_catalog", &meshv1alpha1.MeshPolicy{})
	p.Namespace = ns
	p.Spec.Provider = ""
	p.Spec.Retries.RetryOn = nil
	p.Spec.RateLimit.Burst = nil
	warnings.take()
	if err := warnClient.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.Provider != meshv1alpha1.ProviderAuto || len(p.Spec.Retries.RetryOn) != 1 || p.Spec.Retries.RetryOn[0] != "connect-failure" || *p.Spec.RateLimit.Burst != p.Spec.RateLimit.RequestsPerSecond {
		t.Errorf("defaults not written: provider %q retryOn %v burst %v", p.Spec.Provider, p.Spec.Retries.RetryOn, p.Spec.RateLimit.Burst)
	}
	want := "spec.targetRefs[0]: Service " + ns + "/catalog does not exist"
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, want) {
		t.Errorf("warnings lack %q: %s", want, w)
	}
}

func namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "webhooks-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func sample[T client.Object](t testing.TB, name string, into T) T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "mesh_v1alpha1_"+name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mustYAML(t, string(data), into)
	return into
}

func mustYAML(t testing.TB, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatal(err)
	}
}

// With an explicit provider, a field it can't express is rejected at admission, naming the
// field and why; with provider auto the same policy is admitted (the controller reports gaps).
func TestMeshPolicyUnsupportedFieldsRejectedForExplicitProvider(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	p := &meshv1alpha1.MeshPolicy{}
	mustYAML(t, `
metadata: {name: edge}
spec:
  targetRefs: [{name: shop}]
  provider: traefik
  mtls: {mode: Strict}
  rateLimit: {requestsPerSecond: 10}
`, p)
	p.Namespace = ns
	err := env.Client.Create(ctx, p.DeepCopy())
	if err == nil || !strings.Contains(err.Error(), "spec.mtls.mode") || !strings.Contains(err.Error(), "traefik cannot express") {
		t.Fatalf("explicit traefik with mtls: %v, want a rejection naming spec.mtls.mode", err)
	}
	auto := p.DeepCopy()
	auto.Spec.Provider = meshv1alpha1.ProviderAuto
	if err := env.Client.Create(ctx, auto); err != nil {
		t.Errorf("provider auto is rejected: %v", err)
	}
	// Every sample with an explicit provider is admitted: the samples say only what it can do.
	payments := sample[*meshv1alpha1.MeshPolicy](t, "meshpolicy_payments", &meshv1alpha1.MeshPolicy{})
	payments.Namespace = ns
	if err := env.Client.Create(ctx, payments); err != nil {
		t.Errorf("the payments sample (istio) is rejected: %v", err)
	}
}

// A second policy on a Service already governed is admitted with a warning naming the first.
func TestMeshPolicyWarnsAboutAGovernedService(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for i, name := range []string{"first", "second"} {
		p := &meshv1alpha1.MeshPolicy{}
		mustYAML(t, "metadata: {name: "+name+"}\nspec: {targetRefs: [{name: shop}], timeouts: {request: 5s}}\n", p)
		p.Namespace = ns
		warnings.take()
		if err := warnClient.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		w := strings.Join(warnings.take(), "\n")
		if got := strings.Contains(w, "already governed by MeshPolicy first"); got != (i == 1) {
			t.Errorf("policy %s: warnings %q", name, w)
		}
	}
}

// An object that does not decode into its Go type gets past the defaulting webhooks (which
// could only answer with the decoder's error, naming no field) to schema validation, whose
// rejection names the field.
func TestUndecodableObjectsAreRejectedNamingTheField(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cases := []struct {
		name, sample, field string
		spoil               func(obj map[string]any)
	}{
		{"Rollout with a duration in the wrong unit", "rollout_canary", "spec.progressDeadline",
			func(obj map[string]any) { obj["spec"].(map[string]any)["progressDeadline"] = "10M" }},
		{"HealthGate with an empty duration", "healthgate_latency", "spec.window",
			func(obj map[string]any) { obj["spec"].(map[string]any)["window"] = "" }},
		{"MeshPolicy with a list as spec", "meshpolicy_payments", "spec",
			func(obj map[string]any) { obj["spec"] = []any{} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := sample(t, tc.sample, &unstructured.Unstructured{})
			u.SetNamespace(ns)
			tc.spoil(u.Object)
			err := env.Client.Create(ctx, u, client.DryRunAll)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.field+": ") {
				t.Fatalf("error %v, want the API server's rejection naming %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "denied the request") {
				t.Fatalf("a webhook answered: %v", err)
			}
		})
	}
}
