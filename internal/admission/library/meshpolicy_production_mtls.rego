# METADATA
# title: Production traffic is mutually authenticated
# description: A MeshPolicy in a production namespace sets mtls.mode Strict.
# custom:
#   mode: deny
#   kinds: [MeshPolicy]
#   namespaceSelector: {matchLabels: {sluice.dev/env: production}}
package sluice.library.meshpolicy_production_mtls

violation contains {"field": "spec.mtls.mode", "msg": msg} if {
	mode := object.get(input.object, ["spec", "mtls", "mode"], "unset")
	mode != "Strict"
	msg := sprintf("MeshPolicy %s is in production namespace %s and spec.mtls.mode is %s: production requires Strict", [input.object.metadata.name, input.namespace.name, mode])
}
