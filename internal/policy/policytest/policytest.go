// Package policytest holds what the providers' tests share: golden files of translations and
// server-side apply of the generated objects to a real API server with the upstream CRDs.
package policytest

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// golden is the file form of an Output: everything a provider decided, in a stable order.
type golden struct {
	Objects            []map[string]any                `json:"objects,omitempty"`
	Rules              *policy.RuleSettings            `json:"rules,omitempty"`
	ServiceAnnotations map[string]string               `json:"serviceAnnotations,omitempty"`
	Unsupported        []meshv1alpha1.UnsupportedField `json:"unsupported,omitempty"`
	MatrixUnsupported  []meshv1alpha1.UnsupportedField `json:"matrixUnsupported,omitempty"`
	Partial            []meshv1alpha1.UnsupportedField `json:"partial,omitempty"`
}

// Golden compares the translation of a policy (its Output plus what the matrix says of the
// spec) to testdata/<name>.golden.yaml; go test -update rewrites the file.
func Golden(t *testing.T, name string, p policy.Provider, spec *meshv1alpha1.MeshPolicySpec, out policy.Output) {
	t.Helper()
	unsupported, partial := policy.Check(p.Matrix(), spec)
	g := golden{Rules: out.Rules, ServiceAnnotations: out.ServiceAnnotations, Unsupported: out.Unsupported, MatrixUnsupported: unsupported, Partial: partial}
	for _, o := range out.Objects {
		g.Objects = append(g.Objects, o.Object)
	}
	got, err := yaml.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the translation (go test -update rewrites it after review):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

// warnings collects the API server's warnings; any warning fails the apply.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// Apply server-side applies every object to the real API server as the controller does
// (field manager sluice-meshpolicy, forced), and fails the test if one is refused or draws
// a warning. The objects' namespace must exist (see Namespace).
func Apply(t *testing.T, cfg *rest.Config, objs []*unstructured.Unstructured) {
	t.Helper()
	w := &warnings{}
	c2 := rest.CopyConfig(cfg)
	c2.WarningHandler = w
	c, err := client.New(c2, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		obj := o.DeepCopy()
		ac := client.ApplyConfigurationFromUnstructured(obj)
		if err := c.Apply(context.Background(), ac, client.FieldOwner(policy.FieldManager), client.ForceOwnership); err != nil {
			t.Errorf("applying %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		// Read it back: what the server stored must carry the spec we sent (no field pruned
		// as unknown by the schema).
		back := &unstructured.Unstructured{}
		back.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(o), back); err != nil {
			t.Errorf("reading back %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		if missing := missingFields(o.Object["spec"], back.Object["spec"], "spec"); len(missing) > 0 {
			t.Errorf("%s %s/%s: the server dropped %s (not in the CRD's schema)", o.GetKind(), o.GetNamespace(), o.GetName(), strings.Join(missing, ", "))
		}
	}
	if len(w.msgs) > 0 {
		t.Errorf("the API server warned: %s", strings.Join(w.msgs, "; "))
	}
}

// missingFields lists the paths present in sent but absent from stored.
func missingFields(sent, stored any, path string) []string {
	switch s := sent.(type) {
	case map[string]any:
		st, ok := stored.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		for k, v := range s {
			sv, ok := st[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, missingFields(v, sv, path+"."+k)...)
		}
		return out
	case []any:
		st, ok := stored.([]any)
		if !ok || len(st) != len(s) {
			return []string{path}
		}
		var out []string
		for i := range s {
			out = append(out, missingFields(s[i], st[i], path+"[]")...)
		}
		return out
	default:
		return nil
	}
}

// Namespace creates a namespace for a test's objects.
func Namespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// Policy returns a MeshPolicy named name in namespace ns with spec, targeting the Services.
func Policy(ns, name string, spec meshv1alpha1.MeshPolicySpec) *meshv1alpha1.MeshPolicy {
	return &meshv1alpha1.MeshPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "00000000-0000-0000-0000-000000000001"},
		Spec:       spec,
	}
}

// Service is a ClusterIP Service with the given ports (name http for the first).
func Service(ns, name string, ports ...int32) corev1.Service {
	s := corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}},
	}
	for i, p := range ports {
		n := "http"
		if i > 0 {
			n = "port-" + strings.TrimSpace(string(rune('a'+i)))
		}
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: n, Port: p})
	}
	return s
}

// Targets are targetRefs to the named Services.
func Targets(names ...string) []meshv1alpha1.PolicyTargetReference {
	out := make([]meshv1alpha1.PolicyTargetReference, 0, len(names))
	for _, n := range names {
		out = append(out, meshv1alpha1.PolicyTargetReference{Kind: "Service", Name: n})
	}
	return out
}

// Deterministic translates each input several times and fails when the objects, their order,
// the rule settings or the Service annotations differ between runs (the controller compares
// what it applies; a map iterated in random order would make it rewrite objects forever).
func Deterministic(t *testing.T, p policy.Provider, inputs ...func() policy.Input) {
	t.Helper()
	for i, in := range inputs {
		first, err := p.Translate(in())
		if err != nil {
			t.Fatal(err)
		}
		want, err := yaml.Marshal(first)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			again, err := p.Translate(in())
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(again)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("input %d: the translation differs between runs:\n%s\n---\n%s", i, want, got)
			}
		}
	}
}

// RouteWith is an HTTPRoute (parent Gateway "edge") with one rule to the Service's first port
// carrying the rule settings as the controller writes them, for applying to a real API server.
func RouteWith(t *testing.T, policyName string, svc corev1.Service, rs *policy.RuleSettings) *unstructured.Unstructured {
	t.Helper()
	rule := gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc.Name), Port: ptr.To(svc.Spec.Ports[0].Port)},
	}}}}
	if rs != nil {
		rule.Timeouts, rule.Retry, rule.Filters = rs.Timeouts, rs.Retry, rs.Filters
	}
	rt := &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: policy.ObjectName(policyName, svc.Name), Namespace: svc.Namespace},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
			Rules:           []gwv1.HTTPRouteRule{rule},
		},
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rt)
	if err != nil {
		t.Fatal(err)
	}
	delete(obj, "status") // a subresource: not part of what is applied
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: obj}
}

// ApplyWithRoutes applies the translation's objects and, per target Service, an HTTPRoute
// whose rule carries the translation's rule settings (see RouteWith and Apply).
func ApplyWithRoutes(t *testing.T, cfg *rest.Config, in policy.Input, out policy.Output) {
	t.Helper()
	objs := append([]*unstructured.Unstructured{}, out.Objects...)
	for _, svc := range in.Services {
		objs = append(objs, RouteWith(t, in.Policy.Name, svc, out.Rules))
	}
	Apply(t, cfg, objs)
}

// Ready is the Ready condition the MeshPolicy controller sets for a translation: False, reason
// UnsupportedFields, when the matrix or the translation reports a field unsupported; else True,
// reason AppliedWithDifferences when the matrix marks a set field partial.
func Ready(p policy.Provider, in policy.Input, out policy.Output) metav1.Condition {
	unsupported, partial := policy.Check(p.Matrix(), &in.Policy.Spec)
	unsupported = policy.Merge(unsupported, out.Unsupported...)
	o := policy.Outcome{Partial: policy.Merge(partial), Summary: "translated"}
	if len(unsupported) > 0 {
		o = policy.Outcome{Reason: meshv1alpha1.ReasonUnsupportedFields, Stalled: true, Message: "unsupported fields"}
	}
	pol := in.Policy.DeepCopy()
	policy.SetConditions(pol, o, time.Now())
	return *meta.FindStatusCondition(pol.Status.Conditions, meshv1alpha1.ConditionReady)
}

// RequireUnsupported fails the test unless the translation leaves the policy not Ready, with
// field in status.unsupported and each of words in its reason: a field the provider could only
// express by allowing more than the policy says must never count as applied.
func RequireUnsupported(t *testing.T, p policy.Provider, in policy.Input, out policy.Output, field string, words ...string) {
	t.Helper()
	if ready := Ready(p, in, out); ready.Status != metav1.ConditionFalse || ready.Reason != meshv1alpha1.ReasonUnsupportedFields {
		t.Errorf("Ready = %s (%s), want False (%s)", ready.Status, ready.Reason, meshv1alpha1.ReasonUnsupportedFields)
	}
	unsupported, _ := policy.Check(p.Matrix(), &in.Policy.Spec)
	for _, u := range policy.Merge(unsupported, out.Unsupported...) {
		if u.Field != field {
			continue
		}
		for _, w := range words {
			if !strings.Contains(u.Reason, w) {
				t.Errorf("the reason for %s does not say %q: %s", field, w, u.Reason)
			}
		}
		return
	}
	t.Errorf("%s is not reported unsupported; status.unsupported would be %+v, out.Unsupported %+v", field, unsupported, out.Unsupported)
}

// RequireOutcome fails the test unless the translation leaves the policy not Ready with field
// unsupported (its reason saying each of words), or, when field is "", Ready.
func RequireOutcome(t *testing.T, p policy.Provider, in policy.Input, out policy.Output, field string, words ...string) {
	t.Helper()
	if field != "" {
		RequireUnsupported(t, p, in, out, field, words...)
	} else if ready := Ready(p, in, out); ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %s (%s), want True: the policy is expressed; unsupported %+v", ready.Status, ready.Reason, out.Unsupported)
	}
}

// Specs are the spec of each object of kind in out, in output order.
func Specs(out policy.Output, kind string) []map[string]any {
	var specs []map[string]any
	for _, o := range out.Objects {
		if o.GetKind() == kind {
			spec, _ := o.Object["spec"].(map[string]any)
			specs = append(specs, spec)
		}
	}
	return specs
}
