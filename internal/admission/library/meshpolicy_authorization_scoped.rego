# METADATA
# title: Authorization rules name who may call
# description: >-
#   No authorization rule allows every source: a rule without from lets every namespace and
#   every principal in, which turns the policy's default deny into allow-all for its paths.
# custom:
#   mode: deny
#   kinds: [MeshPolicy]
package sluice.library.meshpolicy_authorization_scoped

violation contains {"field": sprintf("spec.authorization.rules[%d].from", [i]), "msg": msg} if {
	some i, rule in object.get(input.object, ["spec", "authorization", "rules"], [])
	count(object.get(rule, "from", [])) == 0
	msg := sprintf("MeshPolicy %s: spec.authorization.rules[%d] has no from, which allows every namespace and every principal; name the service accounts or namespaces that may call", [input.object.metadata.name, i])
}
