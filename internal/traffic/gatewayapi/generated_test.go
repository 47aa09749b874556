package gatewayapi

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Expected objects are written out literally (not with the package's builders), with every
// default the CRD fills in, as the API server returns them.

func wantRef(name string, weight int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{
			Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")),
			Name: gwv1.ObjectName(name), Port: ptr.To(gwv1.PortNumber(80)),
		},
		Weight: ptr.To(weight),
	}}
}

func wantRootPath() *gwv1.HTTPPathMatch {
	return &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}
}

func wantSplitRule(stable, canary int32, filters ...gwv1.HTTPRouteFilter) gwv1.HTTPRouteRule {
	return gwv1.HTTPRouteRule{
		Name:        ptr.To(gwv1.SectionName("sluice-split")),
		Matches:     []gwv1.HTTPRouteMatch{{Path: wantRootPath()}},
		Filters:     filters,
		BackendRefs: []gwv1.HTTPBackendRef{wantRef("checkout-a", stable), wantRef("checkout-b", canary)},
	}
}

func wantGeneratedSpec(rules ...gwv1.HTTPRouteRule) gwv1.HTTPRouteSpec {
	return gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{
			{
				Group: ptr.To(gwv1.Group("gateway.networking.k8s.io")), Kind: ptr.To(gwv1.Kind("Gateway")),
				Namespace: ptr.To(gwv1.Namespace("gateways")), Name: "edge",
				SectionName: ptr.To(gwv1.SectionName("https")),
			},
			{Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")), Name: "checkout"},
		}},
		Hostnames: []gwv1.Hostname{"shop.example.com"},
		Rules:     rules,
	}
}

const wantBetaCookieRegex = `^(?:.*;\s*)?beta=yes(?:;.*)?$`

func TestGeneratedRoute(t *testing.T) {
	cases := []struct {
		name   string
		adjust func(*traffic.Split)
		want   gwv1.HTTPRouteSpec
	}{
		{
			name: "plain split",
			want: wantGeneratedSpec(wantSplitRule(90, 10)),
		},
		{
			name: "ab header match",
			adjust: func(s *traffic.Split) {
				s.Matches = []meshv1alpha1.RouteMatch{{
					Headers:     []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}},
					QueryParams: []meshv1alpha1.ValueMatch{{Name: "v", Type: meshv1alpha1.MatchRegularExpression, Value: "^2"}},
				}}
			},
			want: wantGeneratedSpec(
				gwv1.HTTPRouteRule{
					Name: ptr.To(gwv1.SectionName("sluice-match-0")),
					Matches: []gwv1.HTTPRouteMatch{{
						Path: wantRootPath(),
						Headers: []gwv1.HTTPHeaderMatch{{
							Type: ptr.To(gwv1.HeaderMatchExact), Name: "x-canary", Value: "always",
						}},
						QueryParams: []gwv1.HTTPQueryParamMatch{{
							Type: ptr.To(gwv1.QueryParamMatchRegularExpression), Name: "v", Value: "^2",
						}},
					}},
					BackendRefs: []gwv1.HTTPBackendRef{wantRef("checkout-b", 1)},
				},
				wantSplitRule(90, 10),
			),
		},
		{
			name: "ab cookie match",
			adjust: func(s *traffic.Split) {
				s.Matches = []meshv1alpha1.RouteMatch{{Cookies: []meshv1alpha1.CookieMatch{{Name: "beta", Value: "yes"}}}}
			},
			want: wantGeneratedSpec(
				gwv1.HTTPRouteRule{
					Name: ptr.To(gwv1.SectionName("sluice-match-0")),
					Matches: []gwv1.HTTPRouteMatch{{
						Path: wantRootPath(),
						Headers: []gwv1.HTTPHeaderMatch{{
							Type: ptr.To(gwv1.HeaderMatchRegularExpression), Name: "Cookie", Value: wantBetaCookieRegex,
						}},
					}},
					BackendRefs: []gwv1.HTTPBackendRef{wantRef("checkout-b", 1)},
				},
				wantSplitRule(90, 10),
			),
		},
		{
			name:   "mirror 20%",
			adjust: func(s *traffic.Split) { s.MirrorPercent = 20 },
			want: wantGeneratedSpec(wantSplitRule(90, 10, gwv1.HTTPRouteFilter{
				Type: gwv1.HTTPRouteFilterRequestMirror,
				RequestMirror: &gwv1.HTTPRequestMirrorFilter{
					BackendRef: wantRef("checkout-b", 0).BackendObjectReference,
					Percent:    ptr.To(int32(20)),
				},
			})),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns := namespace(t)
			s := generatedSplit(ns)
			if tc.adjust != nil {
				tc.adjust(&s)
			}
			if err := New(k8s).Apply(ctx, s); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			got := getRoute(t, ns)
			assertSameJSON(t, "spec", got.Spec, tc.want)
			wantLabels := map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue, traffic.LabelRollout: "checkout", traffic.LabelRolloutUID: string(s.OwnerUID)}
			assertSameJSON(t, "labels", got.Labels, wantLabels)
			if len(got.OwnerReferences) != 0 {
				t.Errorf("ownerReferences %+v: a generated route must survive its Rollout's foreground deletion", got.OwnerReferences)
			}
			st, err := New(k8s).Observe(ctx, s)
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if !st.Found || !st.MatchesApplied || st.MirrorPercent != s.MirrorPercent ||
				st.Weights["checkout-a"] != 90 || st.Weights["checkout-b"] != 10 {
				t.Errorf("Observe = %+v", st)
			}
		})
	}
}

func TestCookieRegexSemantics(t *testing.T) {
	re := regexp.MustCompile(wantBetaCookieRegex)
	for header, want := range map[string]bool{
		"a=1; beta=yes; c=2": true,
		"beta=yes":           true,
		"a=1;beta=yes":       true,
		"beta=yes; c=2":      true,
		"notbeta=yes":        false,
		"beta=yess":          false,
		"a=beta=yes":         false,
		"beta=no; x=beta":    false,
	} {
		if got := re.MatchString(header); got != want {
			t.Errorf("Cookie %q: match = %v, want %v", header, got, want)
		}
	}
}

func TestGeneratedRouteUpdatedInPlace(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	before := getRoute(t, ns)

	// The same split again writes nothing.
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("repeated Apply: %v", err)
	}
	if again := getRoute(t, ns); again.ResourceVersion != before.ResourceVersion {
		t.Errorf("an unchanged split rewrote the route: resourceVersion %s -> %s", before.ResourceVersion, again.ResourceVersion)
	}

	s.Stable.Weight, s.Canary.Weight = 40, 60
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	after := getRoute(t, ns)
	if after.UID != before.UID {
		t.Errorf("route was recreated (uid %s -> %s)", before.UID, after.UID)
	}
	if after.Generation != before.Generation+1 {
		t.Errorf("generation %d -> %d, want +1", before.Generation, after.Generation)
	}
	assertSameJSON(t, "spec", after.Spec, wantGeneratedSpec(wantSplitRule(40, 60)))
	if len(after.OwnerReferences) != 0 {
		t.Errorf("ownerReferences %+v, want none", after.OwnerReferences)
	}
	var managers []string
	for _, mf := range after.ManagedFields {
		managers = append(managers, mf.Manager+"/"+string(mf.Operation))
	}
	assertSameJSON(t, "managedFields managers", managers, []string{"sluice/Apply"})

	// A hand edit (kubectl edit) takes spec.rules; Sluice forces it back on the next Apply.
	edited := after.DeepCopy()
	edited.Spec.Rules[0].BackendRefs[0].Weight = ptr.To(int32(0))
	edited.Spec.Rules[0].BackendRefs[1].Weight = ptr.To(int32(100))
	if err := k8s.Update(ctx, edited, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply after a hand edit: %v", err)
	}
	assertSameJSON(t, "spec after a hand edit", getRoute(t, ns).Spec, wantGeneratedSpec(wantSplitRule(40, 60)))
}

func TestGeneratedRouteRefusesForeignRoute(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// The user's own route has the name the generated route would get.
	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	err := New(k8s).Apply(ctx, generatedSplit(ns))
	if !errors.Is(err, ErrRouteNotOwned) {
		t.Fatalf("Apply = %v, want ErrRouteNotOwned", err)
	}
	assertContains(t, "error", err.Error(), ns+"/checkout", "Rollout checkout")
}
