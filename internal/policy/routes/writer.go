package routes

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Sync makes every HTTPRoute of the edit's namespace carry the edit's settings where its rules
// reach a target, and no longer carry them elsewhere (see plan: on a route a Rollout drives the
// policy only publishes them). It returns the names of the routes that carry them. Routes are
// listed typed, which a manager's client serves from its cache; only a route that needs a change
// is read from the API server as it is stored (every byte of it is kept) and patched. Without the
// HTTPRoute API installed there is nothing to take out, and settings to write are an error.
func Sync(ctx context.Context, c client.Client, e Edit, rollouts []meshv1alpha1.Rollout) ([]string, error) {
	list := &gwv1.HTTPRouteList{}
	if err := c.List(ctx, list, client.InNamespace(e.Namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			if e.Settings.Empty() {
				return nil, nil
			}
			return nil, fmt.Errorf("the HTTPRoute API (gateway.networking.k8s.io/v1) is not installed: %w", err)
		}
		return nil, fmt.Errorf("listing HTTPRoutes in %s: %w", e.Namespace, err)
	}
	driven := Driven(rollouts, list.Items)
	var carrying []string
	for i := range list.Items {
		rt := &list.Items[i]
		raw, err := routerules.Values(rt.Spec.Rules)
		if err != nil {
			return nil, err
		}
		p, err := plan(e, rt.Annotations, raw, driven[rt.Name])
		if err != nil {
			return nil, fmt.Errorf("HTTPRoute %s/%s: %w", rt.Namespace, rt.Name, err)
		}
		carries := p.carries
		if p.changed() {
			if carries, err = syncStored(ctx, c, e, rt.Namespace, rt.Name, driven[rt.Name]); err != nil {
				return nil, fmt.Errorf("HTTPRoute %s/%s: %w", rt.Namespace, rt.Name, err)
			}
		}
		if carries {
			carrying = append(carrying, rt.Name)
		}
	}
	return carrying, nil
}

// Driven names the routes whose rules a Rollout writes: the route each Rollout's httpRouteRef
// names, and each route generated for a Rollout (traffic.RolloutOf). A Rollout being deleted
// drives none: it hands its route back, and from then on the policies write the rules.
func Driven(rollouts []meshv1alpha1.Rollout, list []gwv1.HTTPRoute) map[string]bool {
	live := map[types.UID]bool{}
	out := map[string]bool{}
	for i := range rollouts {
		ro := &rollouts[i]
		if !ro.DeletionTimestamp.IsZero() {
			continue
		}
		live[ro.UID] = true
		if ref := ro.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef; ref != nil {
			out[ref.Name] = true
		}
	}
	for i := range list {
		if uid := traffic.RolloutOf(&list[i]); uid != "" && live[uid] {
			out[list[i].Name] = true
		}
	}
	return out
}

// syncStored reads the route as stored and writes the edit into it; a route gone meanwhile
// carries nothing.
func syncStored(ctx context.Context, c client.Client, e Edit, ns, name string, driven bool) (bool, error) {
	rt, found, err := routerules.Get(ctx, c, ns, name)
	if err != nil || !found {
		return false, err
	}
	p, err := plan(e, rt.Obj.GetAnnotations(), rt.Rules, driven)
	if err != nil || !p.changed() {
		return p.carries, err
	}
	// Guarded by the resourceVersion: the annotations are shared with other policies, and the
	// rules (of a route no Rollout drives) with the user. A conflict is retried with backoff.
	metadata := map[string]any{"resourceVersion": rt.Obj.GetResourceVersion()}
	if len(p.annotations) > 0 {
		metadata["annotations"] = p.annotations
	}
	patch := map[string]any{"metadata": metadata}
	if p.rules != nil {
		patch["spec"] = map[string]any{"rules": p.rules}
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return false, err
	}
	if err := c.Patch(ctx, rt.Obj, client.RawPatch(types.MergePatchType, data), client.FieldOwner(policy.FieldManager)); err != nil {
		return false, fmt.Errorf("writing rule settings: %w", err)
	}
	return p.carries, nil
}

// Routed returns the targets a GAMMA HTTPRoute of the namespace routes: a parentRef of kind
// Service (core group, same namespace) names them. Without the HTTPRoute API, none.
func Routed(ctx context.Context, c client.Reader, namespace string, targets []string) (map[string]bool, error) {
	list := &gwv1.HTTPRouteList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing HTTPRoutes in %s: %w", namespace, err)
	}
	want := map[string]bool{}
	for _, t := range targets {
		want[t] = true
	}
	out := map[string]bool{}
	for i := range list.Items {
		for _, ref := range list.Items[i].Spec.ParentRefs {
			if ref.Kind == nil || *ref.Kind != "Service" || (ref.Group != nil && *ref.Group != "") {
				continue
			}
			if ref.Namespace != nil && string(*ref.Namespace) != namespace {
				continue
			}
			if want[string(ref.Name)] {
				out[string(ref.Name)] = true
			}
		}
	}
	return out, nil
}
