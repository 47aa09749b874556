# METADATA
# title: Production Rollouts are gated
# description: >-
#   A Rollout in a production namespace names at least one HealthGate and a failure limit
#   between 1 and params.maxFailureLimit, so that a bad release rolls back by itself.
# custom:
#   mode: deny
#   kinds: [Rollout]
#   namespaceSelector: {matchLabels: {sluice.dev/env: production}}
#   params: [maxFailureLimit]
package sluice.library.rollout_production_healthgate

violation contains {"field": "spec.analysis.healthGates", "msg": msg} if {
	count(object.get(input.object, ["spec", "analysis", "healthGates"], [])) == 0
	msg := sprintf("Rollout %s is in production namespace %s and names no HealthGate: add spec.analysis.healthGates", [input.object.metadata.name, input.namespace.name])
}

violation contains {"field": "spec.analysis.failureLimit", "msg": msg} if {
	limit := object.get(input.object, ["spec", "analysis", "failureLimit"], 0)
	not allowed_limit(limit)
	msg := sprintf("Rollout %s is in production and spec.analysis.failureLimit is %v: allowed is 1 to %v", [input.object.metadata.name, limit, data.sluice.params.maxFailureLimit])
}

allowed_limit(limit) if {
	limit >= 1
	limit <= data.sluice.params.maxFailureLimit
}
