package admission

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// refusedBuiltin reports whether policies may not call a builtin: anything that reaches the
// network or the host, and anything whose answer differs between the webhook and
// `sluice policy test` for the same input.
func refusedBuiltin(name string) bool {
	switch {
	case name == "http.send", strings.HasPrefix(name, "net."), // the network
		strings.HasPrefix(name, "opa.runtime"),      // the manager's environment and configuration
		strings.HasPrefix(name, "providers.aws."),   // signs requests for the network
		name == "rand.intn", name == "uuid.rfc4122": // verdicts must be reproducible offline
		return true
	}
	return false
}

// capabilities are this OPA's builtins without the refused ones, and no network at all
// (AllowNet empty: not even for remote schemas at compile time).
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0:0]
	for _, b := range c.Builtins {
		if !refusedBuiltin(b.Name) {
			kept = append(kept, b)
		}
	}
	c.Builtins = kept
	c.AllowNet = []string{}
	return c
}
