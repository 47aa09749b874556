package linkerd

import (
	"fmt"
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestApply server-side applies every case's objects to the API server, which checks them
// against Linkerd's CRD schemas (no refusal, no warning, no pruned field).
func TestApply(t *testing.T) {
	p := New()
	for i, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			ns := fmt.Sprintf("linkerd-%d", i)
			policytest.Namespace(t, env.Client, ns)
			out, err := p.Translate(c.input(ns))
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			for _, o := range out.Objects {
				if o.GetNamespace() != ns {
					t.Errorf("%s %s is in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
				}
			}
			policytest.Apply(t, env.Config, out.Objects)
		})
	}
}
