package linkerd

import (
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestMatrix(t *testing.T) {
	p := New()
	if err := p.Matrix().Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Kinds()) == 0 || p.Kinds()[0] != serverGVK {
		t.Errorf("Kinds() = %v, want Server first", p.Kinds())
	}
	if p.Name() != meshv1alpha1.ProviderLinkerd {
		t.Errorf("Name() = %q", p.Name())
	}
}
