package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// ProbeTargets implements traffic.Router: a target per Gateway parent of the route (its
// address, the listener the parentRef selects, a hostname both accept). An east-west parent (a
// Service: the mesh's sidecars are the data plane, and the manager is not among the clients
// whose sidecar routes) or a Gateway without a usable address makes the route unprobeable.
func (r *Router) ProbeTargets(ctx context.Context, s traffic.Split, override string) ([]probe.Target, string, error) {
	rt, found, err := routerules.Get(ctx, r.c, s.Namespace, s.RouteName())
	if err != nil {
		return nil, "", err
	}
	if !found {
		return nil, "", fmt.Errorf("%w: HTTPRoute %s/%s does not exist", ErrRouteNotFound, s.Namespace, s.RouteName())
	}
	var targets []probe.Target
	for _, ref := range rt.Typed.Spec.ParentRefs {
		kind, group := "Gateway", gwv1.GroupName
		if ref.Kind != nil {
			kind = string(*ref.Kind)
		}
		if ref.Group != nil {
			group = string(*ref.Group)
		}
		ns := s.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if kind != "Gateway" || group != gwv1.GroupName {
			return nil, fmt.Sprintf("parent %s %s/%s routes east-west: every client's mesh proxy is the data plane, and no single probe reaches them all", kind, ns, ref.Name), nil
		}
		gw := &gwv1.Gateway{}
		reader := r.Gateways
		if reader == nil {
			reader = r.c
		}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: string(ref.Name)}, gw); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Sprintf("Gateway %s/%s does not exist", ns, ref.Name), nil
			}
			return nil, "", fmt.Errorf("reading Gateway %s/%s: %w", ns, ref.Name, err)
		}
		if override != "" {
			gw = withAddress(gw, override)
		}
		t, err := probe.GatewayTarget(gw, ref, rt.Typed.Spec.Hostnames)
		if errors.Is(err, probe.ErrNoTarget) {
			return nil, err.Error(), nil
		}
		if err != nil {
			return nil, "", err
		}
		if override != "" {
			t.URL = strings.TrimSuffix(override, "/")
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil, "the route has no parents", nil
	}
	return targets, "", nil
}

// withAddress is gw reported at the override's host, so a listener is still chosen by the
// parentRef (the override then replaces the scheme, address and port).
func withAddress(gw *gwv1.Gateway, override string) *gwv1.Gateway {
	out := gw.DeepCopy()
	host := override
	if u, err := url.Parse(override); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	out.Status.Addresses = []gwv1.GatewayStatusAddress{{Value: host}}
	return out
}
