package rollout

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Steps is the canary's step list: the explicit steps, or the stepWeight/maxWeight shorthand
// expanded to setWeight steps each followed by one gate check (with analysis) or a pause of one
// analysis interval (without).
func Steps(spec *meshv1alpha1.RolloutSpec) []meshv1alpha1.CanaryStep {
	c := spec.Strategy.Canary
	if c == nil {
		return nil
	}
	if len(c.Steps) > 0 {
		return c.Steps
	}
	if c.StepWeight == nil || *c.StepWeight <= 0 {
		return nil
	}
	wait := meshv1alpha1.CanaryStep{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: spec.Analysis.GetInterval()}}}
	if spec.Analysis != nil {
		wait = meshv1alpha1.CanaryStep{Analysis: &meshv1alpha1.AnalysisStep{Checks: 1}}
	}
	var steps []meshv1alpha1.CanaryStep
	maxW := c.GetMaxWeight()
	for w := *c.StepWeight; ; w += *c.StepWeight {
		if w > maxW {
			w = maxW
		}
		weight := w
		steps = append(steps, meshv1alpha1.CanaryStep{SetWeight: &weight}, wait)
		if w == maxW {
			return steps
		}
	}
}

// WeightAt is the canary weight in force during step i: the last setWeight at or before it.
func WeightAt(steps []meshv1alpha1.CanaryStep, i int) int32 {
	if i >= len(steps) {
		i = len(steps) - 1
	}
	for ; i >= 0; i-- {
		if steps[i].SetWeight != nil {
			return *steps[i].SetWeight
		}
	}
	return 0
}
