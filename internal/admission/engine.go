// Package admission is Sluice's policy engine: Rego policies (a built-in library plus the
// platform team's own) evaluated on the mesh's resources at admission, in the periodic audit
// and offline in CI, all through the same Engine so that the three give the same verdicts.
package admission

import (
	"context"
	"fmt"
	"strings"
)

// Mode is what a violation of a policy does.
type Mode string

const (
	// Deny rejects the request.
	Deny Mode = "deny"
	// Warn admits it with an admission warning (kubectl prints it).
	Warn Mode = "warn"
	// Audit admits it and records the violation (metrics, events in the audit).
	Audit Mode = "audit"
	// Off turns a policy off (configuration only).
	Off Mode = "off"
)

// ParseMode reads a mode; empty is Deny.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return Deny, nil
	case Deny, Warn, Audit, Off:
		return m, nil
	default:
		return "", fmt.Errorf("mode %q: allowed are deny, warn, audit, off", s)
	}
}

// Operation is what happens to the object under review.
type Operation string

const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	// AuditRun is an existing object read by the periodic audit (`sluice policy test`
	// reviews manifests as creates, as the API server would see them when applied).
	AuditRun Operation = "AUDIT"
)

// Input is one object under review. Object and OldObject are the JSON form
// (map[string]any, as decoded by encoding/json or unstructured).
type Input struct {
	Operation Operation
	// Object carries apiVersion, kind, metadata.namespace and metadata.name.
	Object    map[string]any
	OldObject map[string]any
	// NamespaceLabels are the labels of the object's namespace (nil: none or unknown).
	NamespaceLabels map[string]string
	// ReleasedBy names the Rollouts in the namespace whose target is this object (a
	// Deployment they release).
	ReleasedBy []string
	// User is who asks (empty in the audit and offline).
	User   string
	Groups []string
	DryRun bool
}

// Violation is one policy finding on one object.
type Violation struct {
	Policy string
	Mode   Mode
	// Field is the JSON path of the offending field (spec.analysis.healthGates), when the
	// policy names one.
	Field   string
	Message string
	// EvalError is set when the policy could not decide (error, or past its budget): the
	// violation then stands for "not evaluated" and follows the documented failure mode
	// (it counts in the policy's own mode).
	EvalError bool
	cause     error
}

// String is the one-line form shown to users: policy, object and field.
func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", v.Policy, v.Message)
	if v.Field != "" && !strings.Contains(v.Message, v.Field) {
		fmt.Fprintf(&b, " (field %s)", v.Field)
	}
	return b.String()
}

// Verdict is the result of reviewing one object with every policy that applies to it.
type Verdict struct {
	// Violations in policy order; Denied tells whether any is in deny mode.
	Violations []Violation
	// Evaluated is the number of policies that applied.
	Evaluated int
}

// Denied reports whether a deny-mode policy was violated.
func (v Verdict) Denied() bool { return len(v.ByMode(Deny)) > 0 }

// ByMode returns the violations of one mode.
func (v Verdict) ByMode(m Mode) []Violation {
	var out []Violation
	for _, x := range v.Violations {
		if x.Mode == m {
			out = append(out, x)
		}
	}
	return out
}

// Engine reviews objects against the policies in force. Implementations are safe for
// concurrent use; a reload never leaves a window without policies.
type Engine interface {
	Review(ctx context.Context, in Input) Verdict
}
