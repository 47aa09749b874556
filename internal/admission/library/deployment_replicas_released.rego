# METADATA
# title: Released Deployments leave replicas to Sluice
# description: >-
#   A Deployment that a Rollout releases does not set spec.replicas in its manifest: Sluice
#   scales it to zero and runs the slots, and every sync of a replicas count from Git would
#   fight that. Set the replicas count on the Deployment only before handing it to a Rollout.
# custom:
#   mode: warn
#   kinds: [Deployment]
package sluice.library.deployment_replicas_released

violation contains {"field": "spec.replicas", "msg": msg} if {
	count(input.releasedBy) > 0
	replicas_from_manifest
	msg := sprintf("Deployment %s is released by Rollout %s but its manifest sets spec.replicas; remove it from Git (Sluice scales the target and runs the slots)", [input.object.metadata.name, concat(", ", input.releasedBy)])
}

# In the cluster, server-side apply (kubectl apply --server-side, Flux, Argo CD): the applier
# owns exactly the fields of its manifest. (An update, kubectl create or edit, owns the
# API server's defaults too, so it can't tell; the scale subresource is never a manifest.)
replicas_from_manifest if {
	some entry in object.get(input.object, ["metadata", "managedFields"], [])
	entry.operation == "Apply"
	entry.manager != "sluice"
	object.get(entry, "subresource", "") == ""
	entry.fieldsV1["f:spec"]["f:replicas"]
}

replicas_from_manifest if {
	last := json.unmarshal(input.object.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"])
	last.spec.replicas
}

# Client-side apply keeps the manifest in an annotation (above); a manifest file
# (sluice policy test) has no managedFields: the field itself.
replicas_from_manifest if {
	count(object.get(input.object, ["metadata", "managedFields"], [])) == 0
	input.object.spec.replicas
}
