// Package statusfixtures makes the Rollouts, HealthGates and MeshPolicies, status included,
// that the status readers of other tools are tested on: Argo CD's health checks and actions
// (config/argocd), kstatus (Flux's default) and Flux's healthCheckExprs (docs/flux.md).
//
// The objects come from Sluice's own code wherever it is pure: a Rollout's status is what the
// state machine (internal/rollout.Next, whose decision the controller writes as it is) decides
// while a simulated cluster answers it; gate verdicts come from the real HealthGate evaluation
// (internal/gates) over canned Prometheus answers; specs pass through the defaulting webhooks;
// MeshPolicy support gaps come from the providers' support matrices. Conditions that only the
// HealthGate and MeshPolicy reconcilers write are set here as those reconcilers set them.
//
// The YAML files under testdata/ are this package's output (see Files), checked in so that
// readers in other languages can use them; a test keeps them equal to it.
package statusfixtures

import (
	"fmt"
	"path"
	"sort"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Fixture is one object in one state.
type Fixture struct {
	// Kind is Rollout, HealthGate or MeshPolicy.
	Kind string
	// Name is the file name without .yaml: what state the object is in.
	Name string
	// Object is the object as the API server would return it.
	Object client.Object
}

// Path is the fixture's file, relative to testdata/: <kind in lower case>/<name>.yaml.
func (f Fixture) Path() string { return path.Join(kindDir(f.Kind), f.Name+".yaml") }

func kindDir(kind string) string {
	switch kind {
	case "Rollout":
		return "rollout"
	case "HealthGate":
		return "healthgate"
	case "MeshPolicy":
		return "meshpolicy"
	}
	return kind
}

// YAML is the object as YAML. An empty status is left out, as the API server leaves it out
// of an object whose status was never written.
func (f Fixture) YAML() ([]byte, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(f.Object)
	if err != nil {
		return nil, err
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	meta, _ := m["metadata"].(map[string]any)
	if meta != nil && meta["creationTimestamp"] == nil {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// All returns every fixture, Rollouts first, each kind sorted by name.
func All() ([]Fixture, error) {
	var out []Fixture
	for _, gen := range []func() ([]Fixture, error){Rollouts, HealthGates, MeshPolicies} {
		fs, err := gen()
		if err != nil {
			return nil, err
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
		out = append(out, fs...)
	}
	for _, f := range out {
		if f.Name == "no-status" {
			notYetReconciled(f.Object)
		}
	}
	seen := map[string]bool{}
	for _, f := range out {
		if seen[f.Path()] {
			return nil, fmt.Errorf("two fixtures at %s", f.Path())
		}
		seen[f.Path()] = true
	}
	return out, nil
}

// notYetReconciled is what the API server stores before the controller's first status write:
// the CRDs default status to {} and so observedGeneration to -1.
func notYetReconciled(o client.Object) {
	switch x := o.(type) {
	case *meshv1alpha1.Rollout:
		x.Status = meshv1alpha1.RolloutStatus{ObservedGeneration: -1}
	case *meshv1alpha1.HealthGate:
		x.Status = meshv1alpha1.HealthGateStatus{ObservedGeneration: -1}
	case *meshv1alpha1.MeshPolicy:
		x.Status = meshv1alpha1.MeshPolicyStatus{ObservedGeneration: -1}
	}
}

// Files returns the YAML of every fixture by Path.
func Files() (map[string][]byte, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(all))
	for _, f := range all {
		b, err := f.YAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path(), err)
		}
		out[f.Path()] = b
	}
	return out, nil
}
