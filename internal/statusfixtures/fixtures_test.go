package statusfixtures_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/statusfixtures"
)

// The checked-in YAML is what the package makes from the types and the controller's code
// now (make argocd writes it), and no file is left over from a fixture that went.
func TestTestdataIsGenerated(t *testing.T) {
	files, err := statusfixtures.Files()
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("testdata/%s is not what the generator makes now (run make argocd)", p)
		}
	}
	err = filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s is no fixture any more (run make argocd)", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every phase a Rollout can be in has a fixture.
func TestEveryRolloutPhaseHasAFixture(t *testing.T) {
	ros, err := statusfixtures.Rollouts()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[meshv1alpha1.RolloutPhase]bool{}
	for _, f := range ros {
		seen[f.Object.(*meshv1alpha1.Rollout).Status.Phase] = true
	}
	for _, p := range []meshv1alpha1.RolloutPhase{meshv1alpha1.PhaseInitializing, meshv1alpha1.PhaseHealthy, meshv1alpha1.PhaseProgressing,
		meshv1alpha1.PhasePaused, meshv1alpha1.PhaseHolding, meshv1alpha1.PhasePromoting, meshv1alpha1.PhaseRollingBack,
		meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseFailed} {
		if !seen[p] {
			t.Errorf("no Rollout fixture in phase %s", p)
		}
	}
}

// The generator is deterministic: two runs give the same bytes (no wall clock, no map order).
func TestFixturesAreDeterministic(t *testing.T) {
	a, err := statusfixtures.Files()
	if err != nil {
		t.Fatal(err)
	}
	b, err := statusfixtures.Files()
	if err != nil {
		t.Fatal(err)
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two runs", p)
		}
	}
}
