package admissiontest

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Object is one object under review as the API server sends it in an AdmissionReview on
// create: defaulted, with uid, creation time and managed fields set.
type Object struct {
	Group, Version, Kind, Resource string
	Namespace, Name                string
	// JSON is the object (request.object).
	JSON []byte
}

// Map is the object decoded as the webhook decodes it (a fresh copy each call).
func (o Object) Map() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(o.JSON, &m); err != nil {
		panic(err)
	}
	return m
}

// NamespaceLabels are the labels of the namespace the objects are reviewed in: checked
// for policies (Deployments are reviewed) and production (the production rules apply).
func NamespaceLabels(namespace string) map[string]string {
	return map[string]string{
		"kubernetes.io/metadata.name":   namespace,
		"mesh.sluice.dev/policy-checks": "enabled",
		"sluice.dev/env":                "production",
	}
}

// Rollout is a production canary Rollout that every policy lets through: 12 of the 20
// (library and UserPolicies) apply to it in a namespace with NamespaceLabels.
func Rollout(namespace string) Object {
	return object("mesh.sluice.dev", "v1alpha1", "Rollout", "rollouts", namespace, "checkout", rolloutJSON)
}

// Objects are one of each kind the mix of hack/policy-bench sends: the Rollout, its
// HealthGate, the Deployment it releases and a MeshPolicy; all pass every policy.
func Objects(namespace string) []Object {
	return []Object{
		Rollout(namespace),
		object("mesh.sluice.dev", "v1alpha1", "HealthGate", "healthgates", namespace, "success-rate", healthGateJSON),
		object("mesh.sluice.dev", "v1alpha1", "MeshPolicy", "meshpolicies", namespace, "payments", meshPolicyJSON),
		object("apps", "v1", "Deployment", "deployments", namespace, "checkout", deploymentJSON),
	}
}

func object(group, version, kind, resource, namespace, name, text string) Object {
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(strings.ReplaceAll(text, "NAMESPACE", namespace))); err != nil {
		panic(kind + ": " + err.Error())
	}
	return Object{Group: group, Version: version, Kind: kind, Resource: resource, Namespace: namespace, Name: name, JSON: compact.Bytes()}
}
