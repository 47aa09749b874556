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
	// ConditionAutoscaling says whether an autoscaler drives the Rollout's pod count: True
	// when a HorizontalPodAutoscaler (KEDA makes one per ScaledObject) targets the Rollout,
	// False when one targets the target Deployment instead (Sluice keeps that at zero, so it
	// scales nothing), absent when neither.
	ConditionAutoscaling = "Autoscaling"
	// ConditionTrafficApplied is True when every route parent accepted the current split.
	ConditionTrafficApplied = "TrafficApplied"
	// ConditionAccepted is True when a MeshPolicy was translated and applied.
	ConditionAccepted = "Accepted"
	// ConditionConflicted is True when an older MeshPolicy already governs the same target.
	ConditionConflicted = "Conflicted"
)

// Condition reasons shared by the controllers.
const (
	// ReasonInvalidSpec marks a spec that can't be acted on until the user changes it.
	ReasonInvalidSpec = "InvalidSpec"
)

// MeshPolicy condition reasons.
const (
	// ReasonApplied: every field is in force as written.
	ReasonApplied = "Applied"
	// ReasonAppliedWithDifferences: in force, some fields with a difference the message names.
	ReasonAppliedWithDifferences = "AppliedWithDifferences"
	// ReasonUnsupportedFields: the provider can't express fields listed in status.unsupported;
	// the rest is applied.
	ReasonUnsupportedFields = "UnsupportedFields"
	// ReasonProviderNotInstalled: the cluster does not serve the provider's resources; nothing
	// was changed.
	ReasonProviderNotInstalled = "ProviderNotInstalled"
	// ReasonNoProviderFound: provider auto found no data plane's resources.
	ReasonNoProviderFound = "NoProviderFound"
	// ReasonTargetNotFound: a target Service does not exist; nothing was changed.
	ReasonTargetNotFound = "TargetNotFound"
	// ReasonObjectNotOwned: an object the policy would generate exists and belongs to someone else.
	ReasonObjectNotOwned = "ObjectNotOwned"
	// ReasonOlderPolicyWins: an older MeshPolicy governs a target of this one (Conflicted=True).
	ReasonOlderPolicyWins = "OlderPolicyWins"
	// ReasonApplyFailed: writing to the API server failed; retried.
	ReasonApplyFailed = "ApplyFailed"
)

// ActionAnnotation asks the Rollout controller for a manual action (see RolloutAction).
// The controller consumes it once, records it in status.lastAction and removes it.
const ActionAnnotation = "mesh.sluice.dev/action"

// AcceptedActionAnnotation holds an action the controller accepted from ActionAnnotation and
// has not yet confirmed in status: "<action>/<id>". The controller moves the action here in one
// write (so it is never lost), records the ID in status.lastAction in the same status write as
// the decision the action causes (so it is applied once), then removes this annotation.
const AcceptedActionAnnotation = "mesh.sluice.dev/action-accepted"

// RolloutAction is a manual action requested through ActionAnnotation.
// +kubebuilder:validation:Enum=promote;promote-full;abort;retry;pause;resume
type RolloutAction string

// The manual actions a Rollout accepts.
const (
	ActionPromote RolloutAction = "promote"
	// ActionPromoteFull skips every remaining step of a canary and promotes (the canary must
	// still answer through the data plane first). For blue-green it is promote.
	ActionPromoteFull RolloutAction = "promote-full"
	ActionAbort       RolloutAction = "abort"
	ActionRetry       RolloutAction = "retry"
	ActionPause       RolloutAction = "pause"
	ActionResume      RolloutAction = "resume"
)

// MeshPolicyRouteAnnotation on an HTTPRoute names the MeshPolicy whose settings (timeouts,
// retry, ExtensionRef filters) are written into the route's rules that reach its targets. On a
// route a Rollout drives, the Rollout's router writes them (from what the policy publishes on
// the route, see internal/routerules).
const MeshPolicyRouteAnnotation = "mesh.sluice.dev/meshpolicy"
