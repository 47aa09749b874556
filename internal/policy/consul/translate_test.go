package consul

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestTranslate compares every case's translation with its golden file (go test -update
// rewrites them; review the diff against Consul's documented semantics).
func TestTranslate(t *testing.T) {
	p := New()
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			in := c.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.Golden(t, c.name, p, &in.Policy.Spec, out)
		})
	}
}

// TestTranslateDeterministic: the same input gives the same objects, in the same order.
func TestTranslateDeterministic(t *testing.T) {
	p := New()
	for _, c := range cases() {
		first, err := p.Translate(c.input("shop"))
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			again, err := p.Translate(c.input("shop"))
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Objects) != len(first.Objects) {
				t.Fatalf("%s: %d objects, then %d", c.name, len(first.Objects), len(again.Objects))
			}
			for i := range first.Objects {
				a, _ := first.Objects[i].MarshalJSON()
				b, _ := again.Objects[i].MarshalJSON()
				if string(a) != string(b) {
					t.Errorf("%s: object %d differs between runs:\n%s\n%s", c.name, i, a, b)
				}
			}
		}
	}
}

func TestTranslateWithoutPolicy(t *testing.T) {
	if _, err := New().Translate(policy.Input{}); err == nil {
		t.Error("Translate without a policy: want an error")
	}
}
