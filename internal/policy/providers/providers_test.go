package providers

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Every provider has a row for every MeshPolicy field: a field added to the API without a
// row in each matrix fails here (policy.Fields walks the spec type itself).
func TestEveryFieldHasARowForEveryProvider(t *testing.T) {
	for _, p := range All() {
		if err := p.Matrix().Validate(); err != nil {
			t.Errorf("provider %s: %v", p.Name(), err)
		}
		if len(p.Kinds()) == 0 {
			t.Errorf("provider %s lists no kinds", p.Name())
		}
	}
}

func TestAllFollowsOrderAndNamesAreTheEnum(t *testing.T) {
	all := All()
	if len(all) != len(Order) {
		t.Fatalf("%d providers, %d in Order", len(all), len(Order))
	}
	for i, p := range all {
		if p.Name() != Order[i] {
			t.Errorf("All()[%d] is %s, Order says %s", i, p.Name(), Order[i])
		}
		if got, ok := ByName(p.Name()); !ok || got.Name() != p.Name() {
			t.Errorf("ByName(%s) = %v, %v", p.Name(), got, ok)
		}
	}
}

// mapper serves the given kinds and nothing else.
func mapper(kinds ...schema.GroupVersionKind) meta.RESTMapper {
	var gvs []schema.GroupVersion
	for _, k := range kinds {
		gvs = append(gvs, k.GroupVersion())
	}
	m := meta.NewDefaultRESTMapper(gvs)
	for _, k := range kinds {
		m.Add(k, meta.RESTScopeNamespace)
	}
	return m
}

func kindsOf(name meshv1alpha1.Provider) []schema.GroupVersionKind {
	p, _ := ByName(name)
	return p.Kinds()
}

func TestResolve(t *testing.T) {
	traefikAndGateway := append(kindsOf(meshv1alpha1.ProviderTraefik), kindsOf(meshv1alpha1.ProviderGatewayAPI)...)
	cases := []struct {
		name   string
		served []schema.GroupVersionKind
		want   meshv1alpha1.Provider
		chosen meshv1alpha1.Provider
		err    error
	}{
		{"auto prefers a mesh", append(append([]schema.GroupVersionKind{}, traefikAndGateway...), kindsOf(meshv1alpha1.ProviderLinkerd)...), meshv1alpha1.ProviderAuto, meshv1alpha1.ProviderLinkerd, nil},
		{"auto takes traefik over plain gateway API", traefikAndGateway, meshv1alpha1.ProviderAuto, meshv1alpha1.ProviderTraefik, nil},
		{"auto with only gateway API", kindsOf(meshv1alpha1.ProviderGatewayAPI), "", meshv1alpha1.ProviderGatewayAPI, nil},
		{"auto with nothing", nil, meshv1alpha1.ProviderAuto, "", ErrNoProvider},
		{"explicit and installed", kindsOf(meshv1alpha1.ProviderIstio), meshv1alpha1.ProviderIstio, meshv1alpha1.ProviderIstio, nil},
		{"explicit, not installed", traefikAndGateway, meshv1alpha1.ProviderConsul, meshv1alpha1.ProviderConsul, ErrNotInstalled},
		{"auto, half installed", kindsOf(meshv1alpha1.ProviderIstio)[:1], meshv1alpha1.ProviderAuto, meshv1alpha1.ProviderIstio, ErrNotInstalled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Resolve(mapper(tc.served...), tc.want)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.chosen == "" {
				if p != nil {
					t.Errorf("chose %s", p.Name())
				}
				return
			}
			if p == nil || p.Name() != tc.chosen {
				t.Errorf("chose %v, want %s", p, tc.chosen)
			}
			if errors.Is(err, ErrNotInstalled) && !strings.Contains(err.Error(), "does not serve") {
				t.Errorf("error does not say what is missing: %v", err)
			}
		})
	}
}
