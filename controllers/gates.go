package controllers

import (
	"context"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// PendingGates is the GateChecker until HealthGate evaluation lands. It never passes a check:
// every check is Inconclusive, so analysis steps wait (and say why) instead of promoting a
// release nobody judged. Rollouts without analysis steps are not affected.
type PendingGates struct{}

// Check reports Inconclusive.
func (PendingGates) Check(context.Context, *meshv1alpha1.Rollout) rollout.Check {
	return rollout.Check{Verdict: meshv1alpha1.VerdictInconclusive, Message: "HealthGate evaluation is not implemented yet: analysis cannot pass"}
}
