package statusfixtures

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
	"github.com/sluice-mesh/sluice/webhooks"
)

// catalogSpec is the catalog policy of config/samples for one provider.
func catalogSpec(p meshv1alpha1.Provider) meshv1alpha1.MeshPolicySpec {
	return meshv1alpha1.MeshPolicySpec{
		TargetRefs: []meshv1alpha1.PolicyTargetReference{{Name: "catalog"}},
		Provider:   p,
		Retries:    &meshv1alpha1.Retries{Attempts: 2, RetryOn: []meshv1alpha1.RetryOn{"connect-failure"}},
		RateLimit:  &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To(int32(200))},
		LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash,
			ConsistentHash: &meshv1alpha1.ConsistentHash{Cookie: &meshv1alpha1.HashCookie{Name: "session", TTL: &metav1.Duration{Duration: time.Hour}}}},
	}
}

func meshPolicy(name string, spec meshv1alpha1.MeshPolicySpec) *meshv1alpha1.MeshPolicy {
	p := &meshv1alpha1.MeshPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshPolicy"},
		ObjectMeta: objectMeta(name, 1),
		Spec:       spec,
	}
	must(webhooks.MeshPolicyDefaulter{}.Default(context.Background(), p))
	p.Finalizers = []string{"mesh.sluice.dev/meshpolicy"}
	return p
}

// translate does what the MeshPolicy reconciler does with a provider the cluster serves: the
// provider's real translation and support check; the objects it would own go in status.
func translate(p *meshv1alpha1.MeshPolicy, name meshv1alpha1.Provider) (policy.Outcome, error) {
	prov, ok := providers.ByName(name)
	if !ok {
		return policy.Outcome{}, fmt.Errorf("no provider %s", name)
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog", Namespace: namespace},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "catalog"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	}
	out, err := prov.Translate(policy.Input{Policy: p, Services: []corev1.Service{svc}})
	if err != nil {
		return policy.Outcome{}, fmt.Errorf("%s: %w", name, err)
	}
	st := &p.Status
	st.Provider = prov.Name()
	unsupported, partial := policy.Check(prov.Matrix(), &p.Spec)
	st.Unsupported = policy.Merge(unsupported, out.Unsupported...)
	st.Resources = nil
	for _, o := range out.Objects {
		st.Resources = append(st.Resources, meshv1alpha1.ResourceReference{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Name: o.GetName()})
	}
	sort.Slice(st.Resources, func(i, j int) bool {
		a, b := st.Resources[i], st.Resources[j]
		return a.Kind+"/"+a.Name < b.Kind+"/"+b.Name
	})
	summary := fmt.Sprintf("translated for %s: %d objects", prov.Name(), len(st.Resources))
	if len(st.Unsupported) > 0 {
		var fields []string
		for _, u := range st.Unsupported {
			fields = append(fields, fmt.Sprintf("%s (%s)", u.Field, u.Reason))
		}
		return policy.Outcome{Reason: meshv1alpha1.ReasonUnsupportedFields, Stalled: true, Summary: summary,
			Message: fmt.Sprintf("%s cannot express %s; the rest is applied (%s)", prov.Name(), strings.Join(fields, "; "), summary)}, nil
	}
	return policy.Outcome{Partial: policy.Merge(partial), Summary: summary}, nil
}

// setPolicyConditions writes the conditions with the MeshPolicy reconciler's own code, at time
// now, and marks the generation observed.
func setPolicyConditions(p *meshv1alpha1.MeshPolicy, o policy.Outcome, now time.Time) {
	policy.SetConditions(p, o, now)
	p.Status.ObservedGeneration = p.Generation
}

// MeshPolicies returns policies applied as written, with differences, with unsupported fields,
// in conflict, waiting for a provider or a Service, and the states around them.
func MeshPolicies() ([]Fixture, error) {
	var out []Fixture
	add := func(name string, p *meshv1alpha1.MeshPolicy) {
		out = append(out, Fixture{Kind: "MeshPolicy", Name: name, Object: p})
	}
	// applied runs the real translation for provider and checks it is the kind of result wanted.
	applied := func(name string, prov meshv1alpha1.Provider, edit func(*meshv1alpha1.MeshPolicySpec), want string) (*meshv1alpha1.MeshPolicy, error) {
		spec := catalogSpec(meshv1alpha1.ProviderAuto)
		edit(&spec)
		p := meshPolicy(name, spec)
		o, err := translate(p, prov)
		if err != nil {
			return nil, err
		}
		got := o.Reason
		if got == "" {
			got = meshv1alpha1.ReasonApplied
			if len(o.Partial) > 0 {
				got = meshv1alpha1.ReasonAppliedWithDifferences
			}
		}
		if got != want {
			return nil, fmt.Errorf("meshpolicy %s: the catalog policy on %s is %s now, not %s: pick another provider", name, prov, got, want)
		}
		setPolicyConditions(p, o, t0)
		return p, nil
	}

	add("no-status", meshPolicy("catalog", catalogSpec(meshv1alpha1.ProviderAuto)))

	retriesOnly := func(s *meshv1alpha1.MeshPolicySpec) { s.RateLimit, s.LoadBalancer = nil, nil }
	noLoadBalancer := func(s *meshv1alpha1.MeshPolicySpec) { s.LoadBalancer = nil }
	asIs := func(*meshv1alpha1.MeshPolicySpec) {}
	var errs []error
	for _, c := range []struct {
		file string
		prov meshv1alpha1.Provider
		edit func(*meshv1alpha1.MeshPolicySpec)
		want string
	}{
		{"applied", meshv1alpha1.ProviderConsul, retriesOnly, meshv1alpha1.ReasonApplied},
		{"applied-with-differences", meshv1alpha1.ProviderTraefik, noLoadBalancer, meshv1alpha1.ReasonAppliedWithDifferences},
		{"unsupported-fields", meshv1alpha1.ProviderGatewayAPI, asIs, meshv1alpha1.ReasonUnsupportedFields},
	} {
		p, err := applied("catalog", c.prov, c.edit, c.want)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		add(c.file, p)
	}

	// The newer of two policies on one Service yields (the reconciler's conflict outcome).
	p := meshPolicy("catalog-canary", catalogSpec(meshv1alpha1.ProviderAuto))
	p.CreationTimestamp = metav1.NewTime(t0.Add(-time.Hour))
	msg := "MeshPolicy catalog, created earlier, already governs Service catalog; this policy is not applied until that one goes or stops targeting it"
	setPolicyConditions(p, policy.Outcome{Reason: meshv1alpha1.ConditionConflicted, Message: msg, Stalled: true, Conflict: "catalog"}, t0)
	add("conflicted", p)

	// An explicit provider whose resources the cluster does not serve: the real discovery.
	p = meshPolicy("catalog", catalogSpec(meshv1alpha1.ProviderLinkerd))
	prov, err := providers.Resolve(meta.NewDefaultRESTMapper([]schema.GroupVersion{}), meshv1alpha1.ProviderLinkerd)
	if !errors.Is(err, providers.ErrNotInstalled) {
		errs = append(errs, fmt.Errorf("meshpolicy provider-not-installed: discovery with no CRDs says %w", err))
	} else {
		p.Status.Provider = prov.Name()
		setPolicyConditions(p, policy.Outcome{Reason: meshv1alpha1.ReasonProviderNotInstalled, Message: err.Error(), Stalled: true}, t0)
		add("provider-not-installed", p)
	}

	// The Service is not there yet (it may come with the same sync): retried, not stalled.
	p = meshPolicy("catalog", catalogSpec(meshv1alpha1.ProviderAuto))
	p.Status.Provider = meshv1alpha1.ProviderIstio
	setPolicyConditions(p, policy.Outcome{Reason: meshv1alpha1.ReasonTargetNotFound,
		Message: "Service catalog not found in namespace shop; nothing was changed"}, t0)
	add("target-not-found", p)

	// A spec change the controller has not seen yet.
	if p, err := applied("catalog", meshv1alpha1.ProviderConsul, retriesOnly, meshv1alpha1.ReasonApplied); err == nil {
		p.Generation = 2
		p.Spec.Retries.Attempts = 3
		add("not-observed", p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
