package consul

import (
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestMatrix(t *testing.T) {
	p := New()
	if err := p.Matrix().Validate(); err != nil {
		t.Fatal(err)
	}
	if p.Name() != meshv1alpha1.ProviderConsul {
		t.Errorf("Name() = %q, want %q", p.Name(), meshv1alpha1.ProviderConsul)
	}
	kinds := p.Kinds()
	if len(kinds) == 0 || kinds[0].Kind != "ServiceDefaults" {
		t.Errorf("Kinds() = %v, want ServiceDefaults first", kinds)
	}
}
