package gatewayapi

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// parentStatus is what a Gateway controller reports for one parent.
func parentStatus(ref gwv1.ParentReference, accepted metav1.ConditionStatus, generation int64, reason, msg string) gwv1.RouteParentStatus {
	return gwv1.RouteParentStatus{
		ParentRef:      ref,
		ControllerName: "example.com/gateway-controller",
		Conditions: []metav1.Condition{{
			Type: "Accepted", Status: accepted, ObservedGeneration: generation,
			LastTransitionTime: metav1.Now(), Reason: reason, Message: msg,
		}},
	}
}

func TestObserveAcceptance(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	s.Stable.Weight, s.Canary.Weight = 50, 50
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	gen := getRoute(t, ns).Generation // 2: a stale parent can report 1

	// As controllers write them: the Gateway ref spelled out, the Service ref with its namespace.
	gateway := gwv1.ParentReference{
		Group: ptr.To(gwv1.Group(gwv1.GroupName)), Kind: ptr.To(gwv1.Kind("Gateway")),
		Namespace: ptr.To(gwv1.Namespace("gateways")), Name: "edge", SectionName: ptr.To(gwv1.SectionName("https")),
	}
	service := gwv1.ParentReference{
		Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")),
		Namespace: ptr.To(gwv1.Namespace(ns)), Name: "checkout",
	}
	cases := []struct {
		name         string
		parents      []gwv1.RouteParentStatus
		wantAccepted bool
		wantMessage  []string // parts of the message; none: the message is empty
	}{
		{
			name:        "no status yet",
			wantMessage: []string{ns + "/checkout", "no status yet"},
		},
		{
			name: "every parent accepted the current generation",
			parents: []gwv1.RouteParentStatus{
				parentStatus(gateway, metav1.ConditionTrue, gen, "Accepted", ""),
				parentStatus(service, metav1.ConditionTrue, gen, "Accepted", ""),
			},
			wantAccepted: true,
		},
		{
			name: "a parent reports a stale generation",
			parents: []gwv1.RouteParentStatus{
				parentStatus(gateway, metav1.ConditionTrue, gen-1, "Accepted", ""),
				parentStatus(service, metav1.ConditionTrue, gen, "Accepted", ""),
			},
			wantMessage: []string{"parent Gateway gateways/edge section https", "generation 1", "generation 2"},
		},
		{
			name:        "a parent has not reported",
			parents:     []gwv1.RouteParentStatus{parentStatus(gateway, metav1.ConditionTrue, gen, "Accepted", "")},
			wantMessage: []string{"parent Service " + ns + "/checkout: no status yet"},
		},
		{
			name: "a parent refuses the route",
			parents: []gwv1.RouteParentStatus{
				parentStatus(gateway, metav1.ConditionFalse, gen, "NotAllowedByListeners", "listener https allows no routes from "+ns),
				parentStatus(service, metav1.ConditionTrue, gen, "Accepted", ""),
			},
			wantMessage: []string{"parent Gateway gateways/edge section https", "Accepted=False", "NotAllowedByListeners", "allows no routes"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.parents != nil { // nil: the route as created, no status at all
				rt := getRoute(t, ns)
				rt.Status.Parents = tc.parents
				if err := k8s.Status().Update(ctx, rt); err != nil {
					t.Fatalf("writing the route status: %v", err)
				}
			}
			st, err := r.Observe(ctx, s)
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if !st.Found || st.Accepted != tc.wantAccepted {
				t.Errorf("Found=%v Accepted=%v (message %q), want Found and Accepted=%v", st.Found, st.Accepted, st.Message, tc.wantAccepted)
			}
			if len(tc.wantMessage) == 0 && st.Message != "" {
				t.Errorf("message = %q, want none", st.Message)
			}
			assertContains(t, "message", st.Message, tc.wantMessage...)
			assertSameJSON(t, "weights", st.Weights, map[string]int32{"checkout-a": 50, "checkout-b": 50})
		})
	}
}

func TestObserveMissingRoute(t *testing.T) {
	ns := namespace(t)
	st, err := New(k8s).Observe(context.Background(), existingSplit(ns))
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if st.Found || st.Accepted {
		t.Errorf("Observe = %+v, want not Found", st)
	}
	assertContains(t, "message", st.Message, ns+"/checkout", "does not exist")
}

// TestObserveDisagreeingRules: two driven rules with different weights (someone edited one)
// are reported, and not Accepted, so the controller re-applies instead of trusting the first.
func TestObserveDisagreeingRules(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	manifest := strings.Join([]string{
		"apiVersion: gateway.networking.k8s.io/v1",
		"kind: HTTPRoute",
		"metadata: {name: checkout, namespace: " + ns + "}",
		"spec:",
		"  parentRefs: [{name: edge}]",
		"  rules:",
		"  - matches: [{path: {type: PathPrefix, value: /a}}]",
		"    backendRefs: [{name: checkout, port: 80}]",
		"  - matches: [{path: {type: PathPrefix, value: /b}}]",
		"    backendRefs: [{name: checkout, port: 80}]",
	}, "\n")
	u := &unstructured.Unstructured{}
	if err := yamlInto(manifest, u); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, u); err != nil {
		t.Fatalf("creating the user's route: %v", err)
	}
	r := New(k8s)
	s := existingSplit(ns)
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	rt := getRoute(t, ns)
	if len(rt.Spec.Rules) != 2 {
		t.Fatalf("rules: %s", mustJSON(t, rt.Spec.Rules))
	}
	rt.Spec.Rules[1].BackendRefs[0].Weight = ptr.To(int32(100))
	rt.Spec.Rules[1].BackendRefs[1].Weight = ptr.To(int32(0))
	if err := k8s.Update(ctx, rt); err != nil {
		t.Fatalf("editing the second rule: %v", err)
	}
	rt.Status.Parents = []gwv1.RouteParentStatus{parentStatus(gwv1.ParentReference{Name: "edge"}, metav1.ConditionTrue, rt.Generation, "Accepted", "")}
	if err := k8s.Status().Update(ctx, rt); err != nil {
		t.Fatalf("writing the route status: %v", err)
	}
	st, err := r.Observe(ctx, s)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if st.Accepted {
		t.Errorf("Accepted with disagreeing rules: %+v", st)
	}
	assertContains(t, "message", st.Message, "driven rules disagree", "checkout-a=80,checkout-b=20", "checkout-a=100,checkout-b=0")
	assertSameJSON(t, "weights (first driven rule)", st.Weights, map[string]int32{"checkout-a": 80, "checkout-b": 20})
}
