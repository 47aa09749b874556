# METADATA
# title: Canary steps are small
# description: >-
#   The first canary weight and every later weight increase are at most params.maxWeightStep
#   percent, so that a bad release reaches few users before its first check.
# custom:
#   mode: deny
#   kinds: [Rollout]
#   params: [maxWeightStep]
package sluice.library.rollout_weight_cap

canary := object.get(input.object, ["spec", "strategy", "canary"], {})

cap := data.sluice.params.maxWeightStep

# The weights of the steps in order, with the field that sets each.
weights := [[w, sprintf("spec.strategy.canary.steps[%d].setWeight", [i])] |
	some i, step in object.get(canary, "steps", [])
	w := step.setWeight
]

violation contains {"field": field, "msg": msg} if {
	[first, field] := weights[0]
	first > cap
	msg := sprintf("Rollout %s starts its canary at %v%%: the first weight may be at most %v%% (%s)", [input.object.metadata.name, first, cap, field])
}

violation contains {"field": field, "msg": msg} if {
	some i
	i > 0
	[w, field] := weights[i]
	[prev, _] := weights[i - 1]
	w - prev > cap
	msg := sprintf("Rollout %s raises the canary from %v%% to %v%%: a step may add at most %v%% (%s)", [input.object.metadata.name, prev, w, cap, field])
}

violation contains {"field": "spec.strategy.canary.stepWeight", "msg": msg} if {
	count(weights) == 0
	step := canary.stepWeight
	step > cap
	msg := sprintf("Rollout %s moves the canary by %v%% a step: allowed is at most %v%% (spec.strategy.canary.stepWeight)", [input.object.metadata.name, step, cap])
}
