# METADATA
# title: No wildcard hostnames on shared Gateways
# description: >-
#   An HTTPRoute attached to a shared Gateway (one in another namespace, or listed in
#   params.sharedGateways as <namespace>/<name>) names exact hostnames: a wildcard or no
#   hostname at all would take other teams' traffic on that Gateway.
# custom:
#   mode: deny
#   kinds: [HTTPRoute]
#   params: [sharedGateways]
package sluice.library.httproute_shared_gateway_hostnames

route_ns := input.object.metadata.namespace

shared_parents contains ref if {
	some ref in object.get(input.object, ["spec", "parentRefs"], [])
	object.get(ref, "kind", "Gateway") == "Gateway"
	shared(object.get(ref, "namespace", route_ns), ref.name)
}

shared(ns, _) if ns != route_ns

shared(ns, name) if concat("/", [ns, name]) in data.sluice.params.sharedGateways

violation contains {"field": sprintf("spec.hostnames[%d]", [i]), "msg": msg} if {
	some ref in shared_parents
	some i, host in object.get(input.object, ["spec", "hostnames"], [])
	startswith(host, "*")
	msg := sprintf("HTTPRoute %s: spec.hostnames[%d] %q is a wildcard on shared Gateway %s/%s; name exact hostnames", [input.object.metadata.name, i, host, object.get(ref, "namespace", route_ns), ref.name])
}

violation contains {"field": "spec.hostnames", "msg": msg} if {
	some ref in shared_parents
	count(object.get(input.object, ["spec", "hostnames"], [])) == 0
	msg := sprintf("HTTPRoute %s names no hostname on shared Gateway %s/%s, so it matches every host there; set spec.hostnames", [input.object.metadata.name, object.get(ref, "namespace", route_ns), ref.name])
}
