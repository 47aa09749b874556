// Package providers lists the MeshPolicy providers and picks the one a policy uses: the one it
// names, or with provider auto the first whose resources the cluster serves, in Order.
package providers

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/consul"
	"github.com/sluice-mesh/sluice/internal/policy/gatewayapi"
	"github.com/sluice-mesh/sluice/internal/policy/istio"
	"github.com/sluice-mesh/sluice/internal/policy/linkerd"
	"github.com/sluice-mesh/sluice/internal/policy/traefik"
)

// Order is the order provider auto tries. Meshes come first: where one is installed it
// carries the service-to-service traffic a policy is about, and meshes often install the
// Gateway API CRDs too. Istio before Linkerd before Consul (richest translation first, and a
// cluster rarely has two). Then Traefik, whose Middlewares say more than plain Gateway API,
// and Gateway API last: nearly every cluster has its CRDs.
var Order = []meshv1alpha1.Provider{
	meshv1alpha1.ProviderIstio,
	meshv1alpha1.ProviderLinkerd,
	meshv1alpha1.ProviderConsul,
	meshv1alpha1.ProviderTraefik,
	meshv1alpha1.ProviderGatewayAPI,
}

// All returns every provider, in Order.
func All() []policy.Provider {
	return []policy.Provider{istio.New(), linkerd.New(), consul.New(), traefik.New(), gatewayapi.New()}
}

// ByName returns the provider with that spec.provider value.
func ByName(name meshv1alpha1.Provider) (policy.Provider, bool) {
	for _, p := range All() {
		if p.Name() == name {
			return p, true
		}
	}
	return nil, false
}

// ErrNotInstalled: the provider's resources are not served by the cluster.
var ErrNotInstalled = errors.New("provider not installed")

// ErrNoProvider: provider auto found none installed.
var ErrNoProvider = errors.New("no provider installed")

// Resolve returns the provider for want (auto or a name), checking with the REST mapper
// (discovery) that the cluster serves every kind the provider writes.
func Resolve(mapper meta.RESTMapper, want meshv1alpha1.Provider) (policy.Provider, error) {
	if want == "" || want == meshv1alpha1.ProviderAuto {
		for _, p := range All() {
			ok, err := served(mapper, p.Kinds()[0])
			if err != nil {
				return nil, err
			}
			if ok {
				missing, err := missingKinds(mapper, p)
				if err != nil {
					return nil, err
				}
				if len(missing) > 0 {
					return p, fmt.Errorf("%w: provider auto chose %s (its %s is served) but the cluster does not serve %s", ErrNotInstalled, p.Name(), kindName(p.Kinds()[0]), strings.Join(missing, ", "))
				}
				return p, nil
			}
		}
		var looked []string
		for _, p := range All() {
			looked = append(looked, fmt.Sprintf("%s (%s)", p.Name(), kindName(p.Kinds()[0])))
		}
		return nil, fmt.Errorf("%w: provider auto looked for %s and the cluster serves none; install one or set spec.provider", ErrNoProvider, strings.Join(looked, ", "))
	}
	p, ok := ByName(want)
	if !ok {
		return nil, fmt.Errorf("spec.provider %q is not one of auto, %s", want, joinOrder())
	}
	missing, err := missingKinds(mapper, p)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("%w: spec.provider %s needs %s, which the cluster does not serve", ErrNotInstalled, p.Name(), strings.Join(missing, ", "))
	}
	return p, nil
}

func joinOrder() string {
	var s []string
	for _, p := range Order {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

func missingKinds(mapper meta.RESTMapper, p policy.Provider) ([]string, error) {
	var missing []string
	for _, k := range p.Kinds() {
		ok, err := served(mapper, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, kindName(k))
		}
	}
	return missing, nil
}

// served: a NoMatch error means not served; any other error is discovery failing (retry).
func served(mapper meta.RESTMapper, gvk schema.GroupVersionKind) (bool, error) {
	_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("discovering %s: %w", kindName(gvk), err)
	}
}

func kindName(gvk schema.GroupVersionKind) string {
	return gvk.Kind + "." + gvk.Group + "/" + gvk.Version
}
