// Package admissiontest holds a platform team's policies and the objects they judge, as the
// benchmarks of the policy engine use them (internal/admission and hack/policy-bench). It
// imports nothing of Sluice's, so that the engine's own tests can use it.
package admissiontest

import (
	"fmt"
	"strings"
)

// Policy is the text of one user policy as it would sit in a policy ConfigMap.
type Policy struct {
	// Name is <configmap>/<key without .rego>, as the engine names ConfigMap policies.
	Name string
	// Key is the ConfigMap key (file name in compile errors).
	Key    string
	Module string
}

// ConfigMap is the policy ConfigMap the policies would come from.
const ConfigMap = "acme-rules"

// UserPolicies are 13 policies of a platform team: 10 apply to Rollouts (3 of them in
// production namespaces only), 2 to HealthGates, 3 to MeshPolicies, 4 to Deployments. With
// the built-in library (7) they make 20; Rollout and Objects pass all of them.
func UserPolicies() []Policy {
	out := make([]Policy, len(userPolicies))
	for i, p := range userPolicies {
		out[i] = Policy{Name: ConfigMap + "/" + p.name, Key: p.name + ".rego", Module: p.module}
	}
	return out
}

// ScaledPolicies returns n user policies: the first of UserPolicies, then renamed copies of
// them (their own package and name), so that the cost of n policies can be measured.
func ScaledPolicies(n int) []Policy {
	base := UserPolicies()
	out := make([]Policy, 0, n)
	for i := 0; i < n; i++ {
		p := base[i%len(base)]
		if copyNo := i / len(base); copyNo > 0 {
			p = Renamed(p, fmt.Sprintf("copy%d", copyNo))
		}
		out = append(out, p)
	}
	return out
}

// Renamed is a copy of p under its own name and package (suffix appended to both).
func Renamed(p Policy, suffix string) Policy {
	pkg := packageOf(p.Module)
	return Policy{
		Name:   p.Name + "-" + suffix,
		Key:    strings.TrimSuffix(p.Key, ".rego") + "-" + suffix + ".rego",
		Module: strings.Replace(p.Module, "package "+pkg+"\n", "package "+pkg+"_"+suffix+"\n", 1),
	}
}

// Edited is p with a different text that judges the same (a comment added), as a person's
// edit of one policy in the ConfigMap would be: the engine compiles it again.
func Edited(p Policy, n int) Policy {
	p.Module += fmt.Sprintf("\n# edit %d\n", n)
	return p
}

func packageOf(module string) string {
	for _, line := range strings.Split(module, "\n") {
		if pkg, ok := strings.CutPrefix(line, "package "); ok {
			return strings.TrimSpace(pkg)
		}
	}
	panic("policy without package")
}

var userPolicies = []struct{ name, module string }{
	{"required-labels", `# METADATA
# title: Objects name their team and application
# custom:
#   mode: deny
#   kinds: [Rollout, HealthGate, MeshPolicy, Deployment]
package acme.required_labels

required := {"team", "app.kubernetes.io/name"}

violation contains {"field": "metadata.labels", "msg": msg} if {
	provided := {k | some k, _ in object.get(input.object, ["metadata", "labels"], {})}
	missing := required - provided
	count(missing) > 0
	msg := sprintf("%s %s lacks the labels %s (metadata.labels)", [input.object.kind, input.object.metadata.name, concat(", ", sort(missing))])
}

violation contains {"field": "metadata.labels.team", "msg": msg} if {
	team := input.object.metadata.labels.team
	not regex.match(` + "`^[a-z][a-z0-9-]{1,30}$`" + `, team)
	msg := sprintf("%s %s: team label %q is not a team name (metadata.labels.team)", [input.object.kind, input.object.metadata.name, team])
}
`},
	{"name-pattern", `# METADATA
# title: Names are short DNS labels
# custom:
#   mode: deny
#   kinds: [Rollout, HealthGate, MeshPolicy]
package acme.name_pattern

name := input.object.metadata.name

violation contains {"field": "metadata.name", "msg": msg} if {
	not regex.match(` + "`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`" + `, name)
	msg := sprintf("%s %q: names are lower-case words joined by dashes (metadata.name)", [input.object.kind, name])
}

violation contains {"field": "metadata.name", "msg": msg} if {
	count(name) > 40
	msg := sprintf("%s %q is longer than 40 characters (metadata.name)", [input.object.kind, name])
}
`},
	{"owner-annotation", `# METADATA
# title: Released workloads name an owner to page
# custom:
#   mode: audit
#   kinds: [Rollout, Deployment]
package acme.owner_annotation

owner := object.get(input.object, ["metadata", "annotations", "sluice.dev/owner"], "")

violation contains {"field": "metadata.annotations", "msg": msg} if {
	not regex.match(` + "`^[a-z0-9._-]+@example\\.com$`" + `, owner)
	msg := sprintf("%s %s: annotation sluice.dev/owner %q is not an example.com address (metadata.annotations)", [input.object.kind, input.object.metadata.name, owner])
}
`},
	{"rollout-checked-before-half", `# METADATA
# title: No canary takes half the traffic before a check
# custom:
#   mode: warn
#   kinds: [Rollout]
package acme.rollout_checked_before_half

steps := object.get(input.object, ["spec", "strategy", "canary", "steps"], [])

violation contains {"field": sprintf("spec.strategy.canary.steps[%d].setWeight", [i]), "msg": msg} if {
	some i, step in steps
	step.setWeight >= 50
	not checked_before(i)
	msg := sprintf("Rollout %s sends %v%% to the canary before any analysis step (spec.strategy.canary.steps[%d].setWeight)", [input.object.metadata.name, step.setWeight, i])
}

violation contains {"field": "spec.strategy.canary.maxWeight", "msg": msg} if {
	max := input.object.spec.strategy.canary.maxWeight
	max > 80
	msg := sprintf("Rollout %s: spec.strategy.canary.maxWeight %v is above 80", [input.object.metadata.name, max])
}

checked_before(i) if {
	some j, step in steps
	j < i
	step.analysis.checks > 0
}
`},
	{"rollout-progress-deadline", `# METADATA
# title: Rollouts give up within half an hour
# custom:
#   mode: deny
#   kinds: [Rollout]
package acme.rollout_progress_deadline

violation contains {"field": "spec.progressDeadline", "msg": msg} if {
	not input.object.spec.progressDeadline
	msg := sprintf("Rollout %s sets no spec.progressDeadline: set one between 1m and 30m", [input.object.metadata.name])
}

violation contains {"field": "spec.progressDeadline", "msg": msg} if {
	d := time.parse_duration_ns(input.object.spec.progressDeadline)
	not between(d, time.parse_duration_ns("1m"), time.parse_duration_ns("30m"))
	msg := sprintf("Rollout %s: spec.progressDeadline %s is not between 1m and 30m", [input.object.metadata.name, input.object.spec.progressDeadline])
}

between(x, lo, hi) if {
	x >= lo
	x <= hi
}
`},
	{"rollout-analysis-cadence", `# METADATA
# title: Analysis runs often enough and checks more than once
# custom:
#   mode: warn
#   kinds: [Rollout]
package acme.rollout_analysis_cadence

violation contains {"field": "spec.analysis.interval", "msg": msg} if {
	interval := object.get(input.object, ["spec", "analysis", "interval"], "30s")
	d := time.parse_duration_ns(interval)
	d > time.parse_duration_ns("2m")
	msg := sprintf("Rollout %s checks every %s: at most 2m between checks (spec.analysis.interval)", [input.object.metadata.name, interval])
}

violation contains {"field": sprintf("spec.strategy.canary.steps[%d].analysis.checks", [i]), "msg": msg} if {
	some i, step in object.get(input.object, ["spec", "strategy", "canary", "steps"], [])
	step.analysis.checks < 2
	msg := sprintf("Rollout %s: analysis step %d makes a single check (spec.strategy.canary.steps[%d].analysis.checks)", [input.object.metadata.name, i, i])
}
`},
	{"rollout-hostnames-domain", `# METADATA
# title: Rollouts route our own domains only
# custom:
#   mode: deny
#   kinds: [Rollout]
package acme.rollout_hostnames_domain

domains := ["example.com", "example.net"]

violation contains {"field": sprintf("spec.trafficRouting.gatewayAPI.hostnames[%d]", [i]), "msg": msg} if {
	some i, host in object.get(input.object, ["spec", "trafficRouting", "gatewayAPI", "hostnames"], [])
	not ours(host)
	msg := sprintf("Rollout %s: hostname %q is not in %s (spec.trafficRouting.gatewayAPI.hostnames[%d])", [input.object.metadata.name, host, concat(", ", domains), i])
}

ours(host) if {
	not startswith(host, "*")
	some d in domains
	endswith(host, concat("", [".", d]))
}
`},
	{"rollout-gateways", `# METADATA
# title: Rollouts attach to the platform's Gateways
# custom:
#   mode: deny
#   kinds: [Rollout]
package acme.rollout_gateways

allowed := {"gateways/edge", "gateways/internal", "gateways/partner"}

violation contains {"field": sprintf("spec.trafficRouting.gatewayAPI.parentRefs[%d]", [i]), "msg": msg} if {
	some i, ref in object.get(input.object, ["spec", "trafficRouting", "gatewayAPI", "parentRefs"], [])
	ns := object.get(ref, "namespace", input.object.metadata.namespace)
	ns != input.object.metadata.namespace
	gw := concat("/", [ns, ref.name])
	not gw in allowed
	msg := sprintf("Rollout %s attaches to Gateway %s, which is not one of %s (spec.trafficRouting.gatewayAPI.parentRefs[%d])", [input.object.metadata.name, gw, concat(", ", sort(allowed)), i])
}
`},
	{"rollout-production-manual-promote", `# METADATA
# title: Production canaries wait for a person before going all the way
# custom:
#   mode: audit
#   kinds: [Rollout]
#   namespaceSelector: {matchLabels: {sluice.dev/env: production}}
package acme.rollout_production_manual_promote

steps := object.get(input.object, ["spec", "strategy", "canary", "steps"], [])

violation contains {"field": "spec.strategy.canary.steps", "msg": msg} if {
	input.object.spec.strategy.canary
	not manual_pause_last
	msg := sprintf("Rollout %s in production does not end its canary with a pause without duration (spec.strategy.canary.steps)", [input.object.metadata.name])
}

manual_pause_last if {
	last := steps[count(steps) - 1]
	last.pause
	not last.pause.duration
}
`},
	{"rollout-production-evidence", `# METADATA
# title: Production checks rest on enough samples and two gates
# custom:
#   mode: warn
#   kinds: [Rollout]
#   namespaceSelector: {matchLabels: {sluice.dev/env: production}}
package acme.rollout_production_evidence

analysis := object.get(input.object, ["spec", "analysis"], {})

violation contains {"field": "spec.analysis.minSamples", "msg": msg} if {
	samples := object.get(analysis, "minSamples", 0)
	samples < 50
	msg := sprintf("Rollout %s in production judges on %v samples: at least 50 (spec.analysis.minSamples)", [input.object.metadata.name, samples])
}

violation contains {"field": "spec.analysis.healthGates", "msg": msg} if {
	gates := {g.name | some g in object.get(analysis, "healthGates", [])}
	count(gates) < 2
	msg := sprintf("Rollout %s in production names %d distinct HealthGates: at least 2 (spec.analysis.healthGates)", [input.object.metadata.name, count(gates)])
}
`},
	{"deployment-images", `# METADATA
# title: Images come from our registry with a fixed tag
# custom:
#   mode: deny
#   kinds: [Deployment]
package acme.deployment_images

containers contains [field, c] if {
	some kind in ["initContainers", "containers"]
	some i, c in object.get(input.object, ["spec", "template", "spec", kind], [])
	field := sprintf("spec.template.spec.%s[%d].image", [kind, i])
}

violation contains {"field": field, "msg": msg} if {
	some [field, c] in containers
	not startswith(c.image, "registry.example.com/")
	msg := sprintf("Deployment %s: image %q is not from registry.example.com (%s)", [input.object.metadata.name, c.image, field])
}

violation contains {"field": field, "msg": msg} if {
	some [field, c] in containers
	not pinned(c.image)
	msg := sprintf("Deployment %s: image %q has no fixed tag or digest, latest is refused (%s)", [input.object.metadata.name, c.image, field])
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	parts := split(image, "/")
	tagged := split(parts[count(parts) - 1], ":")
	count(tagged) == 2
	tagged[1] != "latest"
}
`},
	{"deployment-resources", `# METADATA
# title: Containers declare their resources, Deployments stay small
# custom:
#   mode: deny
#   kinds: [Deployment]
package acme.deployment_resources

violation contains {"field": sprintf("spec.template.spec.containers[%d].resources", [i]), "msg": msg} if {
	some i, c in input.object.spec.template.spec.containers
	some need in [["requests", "cpu"], ["requests", "memory"], ["limits", "memory"]]
	object.get(c, array.concat(["resources"], need), null) == null
	msg := sprintf("Deployment %s: container %s sets no resources.%s (spec.template.spec.containers[%d].resources)", [input.object.metadata.name, c.name, concat(".", need), i])
}

violation contains {"field": "spec.replicas", "msg": msg} if {
	input.object.spec.replicas > 50
	msg := sprintf("Deployment %s asks for %v replicas: at most 50 (spec.replicas)", [input.object.metadata.name, input.object.spec.replicas])
}
`},
	{"meshpolicy-providers", `# METADATA
# title: MeshPolicies use the meshes we run
# custom:
#   mode: deny
#   kinds: [MeshPolicy]
package acme.meshpolicy_providers

allowed := {"istio", "linkerd", "gatewayAPI"}

violation contains {"field": "spec.provider", "msg": msg} if {
	provider := object.get(input.object, ["spec", "provider"], "")
	not provider in allowed
	msg := sprintf("MeshPolicy %s: spec.provider %q is not one of %s", [input.object.metadata.name, provider, concat(", ", sort(allowed))])
}

violation contains {"field": "spec.retries.attempts", "msg": msg} if {
	input.object.spec.retries.attempts > 5
	msg := sprintf("MeshPolicy %s retries %v times: at most 5 (spec.retries.attempts)", [input.object.metadata.name, input.object.spec.retries.attempts])
}
`},
}
