// Package gates evaluates HealthGates: PromQL queries (written by users or built in for a data
// plane) expanded for a target, run against Prometheus, and judged Pass, Fail, Inconclusive or
// Unreachable. Only Fail counts toward rollback; an unreachable Prometheus is never a Fail.
//
// Files by concern:
//   - template.go: TemplateVars, Expand (values escaped for label matchers), CheckTemplate.
//   - builtins.go: the builtin metrics' queries per data plane, and the sample-count query.
//   - source.go:   MetricSource (Prometheus HTTP API, addresses tried in order, auth, timeout).
//   - evaluate.go: Evaluate: a HealthGate's metrics for a Target → Result with verdicts.
package gates
