package gates

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// ValidateSpec checks what the CRD schema can't: every metric's query (custom, or the builtin
// for spec.dataPlane) passes CheckTemplate. Errors name the field and the metric. Admission
// and the HealthGate controller both use it.
func ValidateSpec(spec *meshv1alpha1.HealthGateSpec) error {
	var errs field.ErrorList
	for i := range spec.Metrics {
		m := &spec.Metrics[i]
		path := field.NewPath("spec", "metrics").Index(i)
		tmpl := m.Query
		if m.Builtin != "" {
			path = path.Child("builtin")
			q, err := BuiltinQuery(spec.DataPlane, m.Builtin)
			if err != nil {
				errs = append(errs, field.Invalid(path, fmt.Sprintf("metric %q", m.Name), err.Error()))
				continue
			}
			tmpl = q
		} else {
			path = path.Child("query")
		}
		if tmpl == "" {
			continue // the schema requires one of query or builtin
		}
		if err := CheckTemplate(tmpl); err != nil {
			errs = append(errs, field.Invalid(path, fmt.Sprintf("metric %q", m.Name), err.Error()))
		}
	}
	return errs.ToAggregate()
}
