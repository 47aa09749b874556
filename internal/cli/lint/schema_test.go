package lint

import "testing"

// TestEmbeddedCRDsBuildCheckers: every generated CRD (config/crd/bases, embedded) gives the
// schema checkers lint needs.
func TestEmbeddedCRDsBuildCheckers(t *testing.T) {
	s, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) < 3 {
		t.Errorf("%d schema checkers, want one per kind (Rollout, HealthGate, MeshPolicy)", len(s))
	}
}
