package linkerd

import (
	"sort"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// gaps collects the value-dependent gaps of one translation, one entry per field; several
// reasons for a field are joined, so none is lost.
type gaps struct {
	reasons map[string][]string
}

func (g *gaps) add(field, reason string) {
	if g.reasons == nil {
		g.reasons = map[string][]string{}
	}
	for _, r := range g.reasons[field] {
		if r == reason {
			return
		}
	}
	g.reasons[field] = append(g.reasons[field], reason)
}

// list is the gaps sorted by field.
func (g *gaps) list() []meshv1alpha1.UnsupportedField {
	var out []meshv1alpha1.UnsupportedField
	for f, rs := range g.reasons {
		out = append(out, meshv1alpha1.UnsupportedField{Field: f, Reason: strings.Join(rs, "; ")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}
