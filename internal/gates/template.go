// Package gates evaluates HealthGates. This file holds the query template variables.
package gates

import (
	"fmt"
	"strings"
	"text/template"
)

// TemplateVars are the values a HealthGate query may use.
type TemplateVars struct {
	Namespace     string
	Service       string
	CanaryService string
	StableService string
	Revision      string
	Window        string
}

// SampleVars are plausible values used to check a template at admission.
var SampleVars = TemplateVars{
	Namespace: "shop", Service: "checkout", CanaryService: "checkout-b",
	StableService: "checkout-a", Revision: "5d8f7c9b4", Window: "1m",
}

// CheckTemplate parses a query template and expands it with SampleVars, so a syntax error or
// an unknown variable is reported at admission instead of at the first analysis.
func CheckTemplate(query string) error {
	t, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return fmt.Errorf("template does not parse: %s", trimTemplateErr(err))
	}
	if err := t.Execute(&strings.Builder{}, SampleVars); err != nil {
		return fmt.Errorf("template does not expand (variables are .Namespace, .Service, .CanaryService, .StableService, .Revision, .Window): %s", trimTemplateErr(err))
	}
	return nil
}

func trimTemplateErr(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}
