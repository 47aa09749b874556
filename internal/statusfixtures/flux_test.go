package statusfixtures_test

import (
	"context"
	"os"
	"strings"
	"testing"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/statusfixtures"
)

// fluxDoc is the page whose Kustomization example carries the expressions under test.
const fluxDoc = "../../docs/flux.md"

// docExpressions reads spec.healthCheckExprs from the YAML block of docs/flux.md that has them,
// by kind, so that the page can't show expressions other than the tested ones.
func docExpressions(t *testing.T) map[string]kustomize.HealthCheckExpressions {
	t.Helper()
	data, err := os.ReadFile(fluxDoc)
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(data), "```yaml\n")[1:] {
		if b, _, ok := strings.Cut(part, "```"); ok && strings.Contains(b, "healthCheckExprs:") {
			if block != "" {
				t.Fatalf("%s: more than one YAML block with healthCheckExprs", fluxDoc)
			}
			block = b
		}
	}
	var ks struct {
		Kind string `json:"kind"`
		Spec struct {
			HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(block), &ks); err != nil || ks.Kind != "Kustomization" {
		t.Fatalf("%s: no Kustomization with healthCheckExprs in a yaml block (%v)", fluxDoc, err)
	}
	out := map[string]kustomize.HealthCheckExpressions{}
	for _, c := range ks.Spec.HealthCheckExprs {
		if c.APIVersion != meshv1alpha1.GroupVersion.String() {
			t.Errorf("%s: healthCheckExprs for %s/%s: want apiVersion %s", fluxDoc, c.APIVersion, c.Kind, meshv1alpha1.GroupVersion)
		}
		out[c.Kind] = c.HealthCheckExpressions
	}
	return out
}

// The expressions of docs/flux.md, run by Flux's own evaluator, read every fixture right: as
// kstatus's truth, a failing HealthGate failed, and an object without status an error (Flux
// keeps waiting and reports it).
func TestFluxHealthCheckExprs(t *testing.T) {
	exprs := docExpressions(t)
	evaluators := map[string]*fluxcel.StatusEvaluator{}
	for _, kind := range []string{"Rollout", "HealthGate", "MeshPolicy"} {
		e, ok := exprs[kind]
		if !ok {
			t.Fatalf("%s has no healthCheckExprs for %s", fluxDoc, kind)
		}
		ev, err := fluxcel.NewStatusEvaluator(&e)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		evaluators[kind] = ev
	}
	// Where the expressions say more than kstatus.
	want := func(kind, name string) kstatus.Status {
		if kind == "HealthGate" && name == "fail" {
			return kstatus.FailedStatus
		}
		tr := kstatusTruth[kind][name]
		return tr.want
	}
	all, err := statusfixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		t.Run(f.Kind+"/"+f.Name, func(t *testing.T) {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(f.Object)
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
				delete(m, "status")
			}
			res, err := evaluators[f.Kind].Evaluate(context.Background(), &unstructured.Unstructured{Object: m})
			w := want(f.Kind, f.Name)
			switch {
			case err != nil:
				t.Errorf("the expressions fail on it: %v", err)
			case res.Status != w:
				t.Errorf("Flux reads %s, want %s", res.Status, w)
			}
		})
	}
}
