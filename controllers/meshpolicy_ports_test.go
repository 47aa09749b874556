package controllers_test

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// checkIstioNamedTargetPortResolved, run while Istio's CRDs are installed (inside
// TestMeshPolicyProviderCRDRemovedAtRunTime: one install and removal for both): an Istio
// authorization on a Service whose targetPort is a name (as a Rollout's, `http`):
// Istio matches pod ports by number only. Before the Service has endpoints the rules can't
// name the port (reported, and the port denied); once endpoints publish it, the policy is
// translated again on its own (no event reaches it) and the rules allow the callers on the
// resolved number.
func checkIstioNamedTargetPortResolved(t *testing.T) {
	ns := policyNamespace(t, "mp-istio-ports")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "shop"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}}
	create(t, svc)
	createPolicy(t, ns, "shop", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderIstio,
		Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: []meshv1alpha1.AuthorizationSource{{Namespace: "shop"}}}}}})
	p := waitPolicy(t, ns, "shop", "the named port reported", func(p *meshv1alpha1.MeshPolicy) bool {
		return slices.ContainsFunc(p.Status.Unsupported, func(u meshv1alpha1.UnsupportedField) bool { return u.Field == "authorization.rules" })
	})
	t.Logf("without endpoints: %+v", p.Status.Unsupported)

	// The EndpointSlice controller's work: the pods serve "http" on 8080.
	create(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "shop-abcde", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "shop"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.20"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	})
	waitPolicy(t, ns, "shop", "applied with the resolved port", func(p *meshv1alpha1.MeshPolicy) bool {
		return len(p.Status.Unsupported) == 0 && condition(p, meshv1alpha1.ConditionAccepted).Status == metav1.ConditionTrue
	})
	ap := &unstructured.Unstructured{}
	ap.SetAPIVersion("security.istio.io/v1")
	ap.SetKind("AuthorizationPolicy")
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shop-shop"}, ap); err != nil {
		t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(ap.Object, "spec", "rules")
	if len(rules) != 1 {
		t.Fatalf("AuthorizationPolicy rules %v, want one", rules)
	}
	to, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "to")
	if len(to) != 1 {
		t.Fatalf("rule to %v, want one operation on the resolved port", to)
	}
	ports, _, _ := unstructured.NestedStringSlice(to[0].(map[string]any), "operation", "ports")
	if !slices.Equal(ports, []string{"8080"}) {
		t.Errorf("rule ports %v, want [8080]", ports)
	}
}
