package istio

import (
	"reflect"
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// goldenNamespace is the namespace of the golden files' policies.
const goldenNamespace = "shop"

func TestTranslateGolden(t *testing.T) {
	p := New()
	for _, tc := range cases(goldenNamespace) {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.Translate(tc.in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			again, err := p.Translate(tc.in)
			if err != nil {
				t.Fatalf("Translate again: %v", err)
			}
			if !reflect.DeepEqual(out, again) {
				t.Errorf("two translations of the same input differ")
			}
			for _, o := range out.Objects {
				if o.GetNamespace() != goldenNamespace || o.GetName() == "" || len(o.GetOwnerReferences()) > 0 || len(o.GetLabels()) > 0 {
					t.Errorf("%s %s/%s: want the policy's namespace, a name, no owners and no labels", o.GetKind(), o.GetNamespace(), o.GetName())
				}
			}
			policytest.Golden(t, tc.name, p, &tc.in.Policy.Spec, out)
		})
	}
}

func TestTranslateWithoutPolicy(t *testing.T) {
	if _, err := New().Translate(policy.Input{}); err == nil {
		t.Fatal("Translate without a policy: want an error")
	}
}

func TestMatrix(t *testing.T) {
	p := New()
	if err := p.Matrix().Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Kinds()) == 0 {
		t.Fatal("no kinds")
	}
	if p.Kinds()[0].Kind != "DestinationRule" {
		t.Errorf("first kind %s: want DestinationRule (what provider auto looks for)", p.Kinds()[0].Kind)
	}
	if p.Name() != "istio" {
		t.Errorf("name %q: want istio", p.Name())
	}
}
