package v1alpha1

// Condition types shared by every kind. Ready, Reconciling and Stalled follow kstatus, so
// generic tooling (Flux, Argo CD health checks, kstatus) reads Sluice objects correctly.
const (
	// ConditionReady is True when the object's desired state is in force.
	ConditionReady = "Ready"
	// ConditionReconciling is True while work towards the desired state is under way.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when no progress is possible without a change by the user.
	ConditionStalled = "Stalled"
)

// Domain condition types.
const (
	// ConditionPromoted is True once the latest release was promoted to the stable slot.
	ConditionPromoted = "Promoted"
	// ConditionRolledBack is True when the latest release was rolled back.
	ConditionRolledBack = "RolledBack"
	// ConditionTrafficApplied is True when every route parent accepted the current split.
	ConditionTrafficApplied = "TrafficApplied"
	// ConditionAccepted is True when a MeshPolicy was translated and applied.
	ConditionAccepted = "Accepted"
	// ConditionConflicted is True when an older MeshPolicy already governs the same target.
	ConditionConflicted = "Conflicted"
)

// Condition reasons shared by the controllers.
const (
	// ReasonNotImplemented marks a kind whose reconciler does not act yet: the object is
	// stored and validated, but nothing is done with it.
	ReasonNotImplemented = "NotImplemented"
	// ReasonInvalidSpec marks a spec that can't be acted on until the user changes it.
	ReasonInvalidSpec = "InvalidSpec"
)

// ActionAnnotation asks the Rollout controller for a manual action (see RolloutAction).
// The controller consumes it once, records it in status.lastAction and removes it.
const ActionAnnotation = "mesh.sluice.dev/action"

// RolloutAction is a manual action requested through ActionAnnotation.
// +kubebuilder:validation:Enum=promote;abort;retry;pause;resume
type RolloutAction string

// The manual actions a Rollout accepts.
const (
	ActionPromote RolloutAction = "promote"
	ActionAbort   RolloutAction = "abort"
	ActionRetry   RolloutAction = "retry"
	ActionPause   RolloutAction = "pause"
	ActionResume  RolloutAction = "resume"
)

// MeshPolicyRouteAnnotation on an HTTPRoute names the MeshPolicy whose settings (timeouts,
// retry, ExtensionRef filters) are written into the route's rules that reach its targets. The
// Rollout controller carries those settings over when it regenerates a route it owns.
const MeshPolicyRouteAnnotation = "mesh.sluice.dev/meshpolicy"
