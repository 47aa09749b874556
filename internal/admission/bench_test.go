package admission

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice-mesh/sluice/internal/admission/admissiontest"
)

// userSources are n user policies as the reloader gives them from the acme-rules ConfigMap.
func userSources(n int) []Source {
	var out []Source
	for _, p := range admissiontest.ScaledPolicies(n) {
		out = append(out, userSource(p))
	}
	return out
}

func userSource(p admissiontest.Policy) Source {
	return Source{Name: p.Name, Origin: "ConfigMap sluice-system/" + admissiontest.ConfigMap + ", key " + p.Key, File: p.Key, Module: p.Module}
}

// benchEngine is the library plus n user policies, loaded.
func benchEngine(b *testing.B, n int) *OPA {
	b.Helper()
	o := NewOPA()
	if l := o.Load(context.Background(), append(Library(), userSources(n)...), Config{}); len(l.Errors) > 0 {
		b.Fatalf("the policies do not load: %v", l.Errors)
	}
	return o
}

// benchInput is the object reviewed as the webhook sees it: decoded, in a production
// namespace labelled for policy checks.
func benchInput(obj admissiontest.Object) Input {
	return Input{Operation: Create, Object: obj.Map(), NamespaceLabels: admissiontest.NamespaceLabels(obj.Namespace),
		User: "system:serviceaccount:argocd:argocd-application-controller", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"}}
}

// reviewLoop reviews in until the benchmark ends and reports the time per policy evaluated.
func reviewLoop(b *testing.B, o *OPA, in Input) {
	b.Helper()
	ctx := context.Background()
	v := o.Review(ctx, in)
	if len(v.Violations) > 0 {
		b.Fatalf("the benchmark object should pass every policy: %v", v.Violations)
	}
	b.ReportAllocs()
	for b.Loop() {
		o.Review(ctx, in)
	}
	b.ReportMetric(float64(v.Evaluated), "policies")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(v.Evaluated), "ns/policy")
}

// BenchmarkReview reviews a production canary Rollout with the library and 13 user policies
// (20 in all, 12 of which apply to a Rollout), as the webhook does for one AdmissionReview.
func BenchmarkReview(b *testing.B) {
	reviewLoop(b, benchEngine(b, 13), benchInput(admissiontest.Rollout("shop")))
}

// BenchmarkReviewKinds reviews one object of each kind of hack/policy-bench's mix with the
// same 20 policies.
func BenchmarkReviewKinds(b *testing.B) {
	o := benchEngine(b, 13)
	for _, obj := range admissiontest.Objects("shop") {
		b.Run(obj.Kind, func(b *testing.B) { reviewLoop(b, o, benchInput(obj)) })
	}
}

// BenchmarkReviewScaling reviews the Rollout with more and more policies (the user policies
// copied under other names): the time and allocations grow by one evaluation per policy that
// applies, on top of a fixed part per review (the input's conversion, done once).
func BenchmarkReviewScaling(b *testing.B) {
	in := benchInput(admissiontest.Rollout("shop"))
	for _, user := range []int{0, 13, 33, 73} {
		b.Run(fmt.Sprintf("policies=%d", len(Library())+user), func(b *testing.B) {
			reviewLoop(b, benchEngine(b, user), in)
		})
	}
}

// BenchmarkReviewInput is the fixed part of a review: the input document built and converted
// to OPA's form, once per review whatever the number of policies.
func BenchmarkReviewInput(b *testing.B) {
	in := benchInput(admissiontest.Rollout("shop"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ast.InterfaceToValue(inputDocument(in)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReviewPerPolicy is each policy's own evaluation (the prepared query on the
// converted input, nothing else): a built-in on its first denied example, a user policy on
// the object of its kind from the mix, which it lets through.
func BenchmarkReviewPerPolicy(b *testing.B) {
	for _, src := range Library() {
		files, _ := filepath.Glob(filepath.Join("library", "examples", src.Name, "denied", "*.yaml"))
		if len(files) == 0 {
			b.Fatalf("built-in %s has no denied example", src.Name)
		}
		ms, err := ReadManifests(files[0])
		if err != nil {
			b.Fatal(err)
		}
		b.Run("built-in/"+src.Name, func(b *testing.B) {
			evaluateLoop(b, src, Inputs(ms, "default", nil), true)
		})
	}
	objects := admissiontest.Objects("shop")
	for _, p := range admissiontest.UserPolicies() {
		var ins []Input
		for _, obj := range objects {
			ins = append(ins, benchInput(obj))
		}
		b.Run("user/"+p.Name, func(b *testing.B) { evaluateLoop(b, userSource(p), ins, false) })
	}
}

// evaluateLoop evaluates the one policy src on the first of ins it applies to.
func evaluateLoop(b *testing.B, src Source, ins []Input, wantViolation bool) {
	o := NewOPA()
	if l := o.Load(context.Background(), []Source{src}, Config{}); len(l.Errors) > 0 {
		b.Fatal(l.Errors)
	}
	set := o.set.Load()
	p := set.policies[0]
	i := slices.IndexFunc(ins, func(in Input) bool {
		k, ok := kindOf(in.Object)
		return ok && slices.Contains(p.meta.Kinds, k) && p.meta.NamespaceSelector.Matches(labels.Set(in.NamespaceLabels))
	})
	if i < 0 {
		b.Fatalf("no input %s applies to", src.Name)
	}
	input, err := ast.InterfaceToValue(inputDocument(ins[i]))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	vs := evaluate(ctx, p, input, set.budget)
	if found := len(vs) > 0; found != wantViolation || slices.ContainsFunc(vs, func(v Violation) bool { return v.EvalError }) {
		b.Fatalf("%s: violations %v, want some: %t", src.Name, vs, wantViolation)
	}
	b.ReportAllocs()
	for b.Loop() {
		evaluate(ctx, p, input, set.budget)
	}
}

// BenchmarkLoad is the hot reload: every policy compiled into a fresh engine (the manager's
// start), one user policy's text changed (a ConfigMap edit: that one is compiled again, the
// others reused), and a reload where nothing changed (a configuration edit: every query is
// prepared again on the new parameters).
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	sources := append(Library(), userSources(13)...)
	load := func(b *testing.B, o *OPA, sources []Source) {
		if l := o.Load(ctx, sources, Config{}); len(l.Errors) > 0 || len(l.Policies) != len(sources) {
			b.Fatalf("load: %d in force, errors %v", len(l.Policies), l.Errors)
		}
	}
	reportMS := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/load")
	}
	b.Run("all-20-fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			load(b, NewOPA(), sources)
		}
		reportMS(b)
	})
	b.Run("one-of-20-changed", func(b *testing.B) {
		o := NewOPA()
		load(b, o, sources)
		changed := slices.Clone(sources)
		last := len(changed) - 1
		edited := admissiontest.UserPolicies()[12]
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			changed[last] = userSource(admissiontest.Edited(edited, i))
			load(b, o, changed)
		}
		reportMS(b)
	})
	b.Run("none-of-20-changed", func(b *testing.B) {
		o := NewOPA()
		load(b, o, sources)
		b.ReportAllocs()
		for b.Loop() {
			load(b, o, sources)
		}
		reportMS(b)
	})
}

// TestBenchPolicies keeps the benchmarks honest: the user policies load, every benchmark
// object passes all 20, 12 of them apply to the Rollout, and each user policy does catch
// what it is written for.
func TestBenchPolicies(t *testing.T) {
	o := NewOPA()
	if l := o.Load(context.Background(), append(Library(), userSources(13)...), Config{}); len(l.Errors) > 0 || len(l.Policies) != 20 {
		t.Fatalf("%d policies in force, errors %v", len(l.Policies), l.Errors)
	}
	objects := map[string]admissiontest.Object{}
	for _, obj := range admissiontest.Objects("shop") {
		objects[obj.Kind] = obj
		v := o.Review(context.Background(), benchInput(obj))
		if len(v.Violations) > 0 {
			t.Errorf("%s: %v", obj.Kind, v.Violations)
		}
		if want := map[string]int{"Rollout": 12, "HealthGate": 3, "MeshPolicy": 5, "Deployment": 5}[obj.Kind]; v.Evaluated != want {
			t.Errorf("%s: %d policies evaluated, want %d", obj.Kind, v.Evaluated, want)
		}
	}
	for _, tc := range []struct {
		kind, policy string
		edit         func(obj map[string]any)
	}{
		{"Rollout", "acme-rules/required-labels", func(o map[string]any) { delete(md(o)["labels"].(map[string]any), "team") }},
		{"MeshPolicy", "acme-rules/name-pattern", func(o map[string]any) { md(o)["name"] = "Payments_v2" }},
		{"Deployment", "acme-rules/owner-annotation", func(o map[string]any) { delete(md(o), "annotations") }},
		{"Rollout", "acme-rules/rollout-checked-before-half", func(o map[string]any) { steps(o)[0] = map[string]any{"setWeight": 60} }},
		{"Rollout", "acme-rules/rollout-progress-deadline", func(o map[string]any) { spec(o)["progressDeadline"] = "2h" }},
		{"Rollout", "acme-rules/rollout-analysis-cadence", func(o map[string]any) { spec(o)["analysis"].(map[string]any)["interval"] = "5m" }},
		{"Rollout", "acme-rules/rollout-hostnames-domain", func(o map[string]any) { gatewayAPI(o)["hostnames"] = []any{"*.example.com"} }},
		{"Rollout", "acme-rules/rollout-gateways", func(o map[string]any) {
			gatewayAPI(o)["parentRefs"] = []any{map[string]any{"name": "edge", "namespace": "team-b"}}
		}},
		{"Rollout", "acme-rules/rollout-production-manual-promote", func(o map[string]any) { s := steps(o); s[len(s)-1] = map[string]any{"setWeight": 100} }},
		{"Rollout", "acme-rules/rollout-production-evidence", func(o map[string]any) { spec(o)["analysis"].(map[string]any)["minSamples"] = 10 }},
		{"Deployment", "acme-rules/deployment-images", func(o map[string]any) { container(o)["image"] = "registry.example.com/shop/checkout:latest" }},
		{"Deployment", "acme-rules/deployment-resources", func(o map[string]any) { delete(container(o), "resources") }},
		{"MeshPolicy", "acme-rules/meshpolicy-providers", func(o map[string]any) { spec(o)["provider"] = "consul" }},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			in := benchInput(objects[tc.kind])
			tc.edit(in.Object)
			v := o.Review(context.Background(), in)
			if !slices.ContainsFunc(v.Violations, func(x Violation) bool { return x.Policy == tc.policy && !x.EvalError }) {
				t.Fatalf("no violation of %s: %v", tc.policy, v.Violations)
			}
			for _, x := range v.Violations {
				t.Log(x)
			}
		})
	}
}

func md(o map[string]any) map[string]any   { return o["metadata"].(map[string]any) }
func spec(o map[string]any) map[string]any { return o["spec"].(map[string]any) }
func steps(o map[string]any) []any {
	return spec(o)["strategy"].(map[string]any)["canary"].(map[string]any)["steps"].([]any)
}
func gatewayAPI(o map[string]any) map[string]any {
	return spec(o)["trafficRouting"].(map[string]any)["gatewayAPI"].(map[string]any)
}
func container(o map[string]any) map[string]any {
	return spec(o)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
}
