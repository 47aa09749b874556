package traefik

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestApplyToAPIServer applies every case's Middlewares to a real API server with Traefik's
// CRD (duration patterns, field names: nothing may be refused or pruned), and an HTTPRoute per
// target whose rule carries the ExtensionRef filters, against the standard HTTPRoute schema.
func TestApplyToAPIServer(t *testing.T) {
	p := New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := "traefik-" + c.name
			policytest.Namespace(t, env.Client, ns)
			in := c.input(ns)
			out, err := p.Translate(in)
			if err != nil {
				t.Fatal(err)
			}
			objs := append([]*unstructured.Unstructured{}, out.Objects...)
			for _, svc := range in.Services {
				objs = append(objs, routeFor(t, in.Policy.Name, svc, out.Rules))
			}
			policytest.Apply(t, env.Config, objs)
		})
	}
}

// routeFor is an HTTPRoute with one rule to the Service's first port, carrying the settings.
func routeFor(t *testing.T, policyName string, svc corev1.Service, rs *policy.RuleSettings) *unstructured.Unstructured {
	t.Helper()
	rule := gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc.Name), Port: ptr.To(svc.Spec.Ports[0].Port)},
	}}}}
	if rs != nil {
		rule.Timeouts, rule.Retry, rule.Filters = rs.Timeouts, rs.Retry, rs.Filters
	}
	rt := &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: policy.ObjectName(policyName, svc.Name), Namespace: svc.Namespace},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
			Rules:           []gwv1.HTTPRouteRule{rule},
		},
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rt)
	if err != nil {
		t.Fatal(err)
	}
	delete(obj, "status") // a subresource: not part of what is applied
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: obj}
}
