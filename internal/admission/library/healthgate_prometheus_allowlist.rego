# METADATA
# title: HealthGates query only known Prometheus servers
# description: >-
#   Every spec.prometheus.addresses entry is in params.prometheusAddresses (exact, or a
#   prefix ending in "/" or ":"). With the list empty, only in-cluster Service names
#   (<service>.<namespace>[.svc[.cluster.local]], http or https) are allowed: never IP
#   literals, localhost or other hosts. The operator calls these addresses; this keeps a
#   HealthGate from turning it against arbitrary URLs (cloud metadata, internal services).
# custom:
#   mode: deny
#   kinds: [HealthGate]
#   params: [prometheusAddresses]
package sluice.library.healthgate_prometheus_allowlist

allowed_list := data.sluice.params.prometheusAddresses

violation contains {"field": sprintf("spec.prometheus.addresses[%d]", [i]), "msg": msg} if {
	count(allowed_list) > 0
	some i, addr in object.get(input.object, ["spec", "prometheus", "addresses"], [])
	not listed(addr)
	msg := sprintf("HealthGate %s: spec.prometheus.addresses[%d] %q is not an allowed Prometheus address (allowed: %s)", [input.object.metadata.name, i, addr, concat(", ", allowed_list)])
}

violation contains {"field": sprintf("spec.prometheus.addresses[%d]", [i]), "msg": msg} if {
	count(allowed_list) == 0
	some i, addr in object.get(input.object, ["spec", "prometheus", "addresses"], [])
	not in_cluster_service(addr)
	msg := sprintf("HealthGate %s: spec.prometheus.addresses[%d] %q is not an in-cluster Service address (http(s)://<service>.<namespace>[.svc[.cluster.local]][:port]); list other addresses in params.prometheusAddresses", [input.object.metadata.name, i, addr])
}

listed(addr) if addr in allowed_list

listed(addr) if {
	some prefix in allowed_list
	endswith(prefix, "/")
	startswith(addr, prefix)
}

listed(addr) if {
	some prefix in allowed_list
	endswith(prefix, ":")
	startswith(addr, prefix)
}

in_cluster_service(addr) if regex.match(`^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.svc(\.cluster\.local)?)?(:[0-9]{1,5})?(/.*)?$`, addr)
