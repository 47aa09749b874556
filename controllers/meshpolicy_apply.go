package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/routes"
)

// apply writes the translation: owned objects first (a route filter must never point at a
// Middleware that isn't there), then Service annotations and route rule settings, then takes
// out what the previous translation had and this one doesn't. It returns the new inventory
// and the routes that carry rule settings; on an error, what it applied so far.
func (r *MeshPolicyReconciler) apply(ctx context.Context, p *meshv1alpha1.MeshPolicy, services []string, out policy.Output) ([]meshv1alpha1.ResourceReference, []string, error) {
	var refs []meshv1alpha1.ResourceReference
	// Objects in the inventory were created by this policy: only new names need the check
	// that they are not someone else's.
	inventoried := map[meshv1alpha1.ResourceReference]bool{}
	for _, ref := range p.Status.Resources {
		inventoried[ref] = true
	}
	owner := metav1.OwnerReference{
		APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "MeshPolicy", Name: p.Name, UID: p.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	for _, o := range out.Objects {
		obj := o.DeepCopy()
		obj.SetNamespace(p.Namespace)
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[policy.LabelPolicy] = p.Name
		labels["app.kubernetes.io/managed-by"] = "sluice"
		obj.SetLabels(labels)
		obj.SetOwnerReferences([]metav1.OwnerReference{owner})
		if !inventoried[refOf(obj)] {
			if err := r.checkNotAdopting(ctx, p, obj); err != nil {
				return refs, nil, err
			}
		}
		if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(policy.FieldManager), client.ForceOwnership); err != nil {
			return refs, nil, fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		refs = append(refs, refOf(obj))
	}
	if len(out.ServiceAnnotations) > 0 {
		for _, name := range services {
			// A slot Service the Rollout has not made yet is annotated once it exists (the
			// Service watch brings the policy back); an apply would try to create it.
			if _, found, err := r.service(ctx, p.Namespace, name); err != nil {
				return refs, nil, fmt.Errorf("reading Service %s: %w", name, err)
			} else if !found {
				continue
			}
			if err := r.annotateService(ctx, p.Namespace, name, out.ServiceAnnotations); err != nil {
				return refs, nil, err
			}
			refs = append(refs, meshv1alpha1.ResourceReference{APIVersion: "v1", Kind: "Service", Name: name})
		}
	}
	sortRefs(refs)

	carrying, err := r.syncRoutes(ctx, p, out.Rules, refs)
	if err != nil {
		return refs, nil, err
	}
	if err := r.prune(ctx, p, refs); err != nil {
		return refs, nil, err
	}
	return refs, carrying, nil
}

// errNotOwned: an object the translation wants exists and belongs to someone else.
var errNotOwned = errors.New("exists and is not owned by this MeshPolicy")

// checkNotAdopting refuses to take over an object someone else made under a name the policy
// generates (Consul config entries are named after the Service, so a user's own ServiceDefaults
// is the usual case): forcing it would overwrite it and garbage-collect it with the policy.
func (r *MeshPolicyReconciler) checkNotAdopting(ctx context.Context, p *meshv1alpha1.MeshPolicy, obj *unstructured.Unstructured) error {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(obj.GroupVersionKind())
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), cur)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	if err == nil && !metav1.IsControlledBy(cur, p) {
		return fmt.Errorf("%s %s %w: Sluice does not take it over; delete it (or remove it from Git) to let the policy manage it", obj.GetKind(), obj.GetName(), errNotOwned)
	}
	return nil
}

// release takes out everything the policy has in force (its inventory in status, its route
// settings): for a deleted policy, or one that yields to an older one.
func (r *MeshPolicyReconciler) release(ctx context.Context, p *meshv1alpha1.MeshPolicy) error {
	if _, err := r.syncRoutes(ctx, p, nil, nil); err != nil {
		return err
	}
	return r.prune(ctx, p, nil)
}

// unionRefs is the inventory after a failed apply: what was there, and what was written.
func unionRefs(old, written []meshv1alpha1.ResourceReference) []meshv1alpha1.ResourceReference {
	seen := map[meshv1alpha1.ResourceReference]bool{}
	var out []meshv1alpha1.ResourceReference
	for _, r := range append(append([]meshv1alpha1.ResourceReference{}, old...), written...) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sortRefs(out)
	return out
}

// syncRoutes writes the rule settings into the routes that reach the targets (or takes them
// out: settings nil); on a route a Rollout drives it publishes them for the Rollout's router to
// compose (routerules). Filters to the policy's Middlewares, old or new, are the policy's.
func (r *MeshPolicyReconciler) syncRoutes(ctx context.Context, p *meshv1alpha1.MeshPolicy, settings *policy.RuleSettings, refs []meshv1alpha1.ResourceReference) ([]string, error) {
	mine := map[string]bool{}
	for _, ref := range append(append([]meshv1alpha1.ResourceReference{}, refs...), p.Status.Resources...) {
		if ref.Kind == "Middleware" {
			mine[ref.Name] = true
		}
	}
	rollouts := &meshv1alpha1.RolloutList{}
	if err := r.Client.List(ctx, rollouts, client.InNamespace(p.Namespace)); err != nil {
		return nil, fmt.Errorf("listing Rollouts in %s: %w", p.Namespace, err)
	}
	return routes.Sync(ctx, r.Client, routes.Edit{
		Policy:    p.Name,
		Namespace: p.Namespace,
		Backends:  routes.Backends(targetNames(p), rollouts.Items),
		Settings:  settings,
		Owned:     slices.Sorted(maps.Keys(mine)),
	}, rollouts.Items)
}

// annotateService server-side applies only the policy's annotations on a Service it does not
// own. Not forced: an annotation someone else manages (say, in Git) is a conflict to report.
func (r *MeshPolicyReconciler) annotateService(ctx context.Context, ns, name string, annotations map[string]string) error {
	s := &unstructured.Unstructured{}
	s.SetAPIVersion("v1")
	s.SetKind("Service")
	s.SetNamespace(ns)
	s.SetName(name)
	if len(annotations) > 0 {
		s.SetAnnotations(annotations)
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(s), client.FieldOwner(policy.FieldManager)); err != nil {
		return fmt.Errorf("annotating Service %s/%s: %w", ns, name, err)
	}
	return nil
}

// prune takes out what the previous inventory had and keep doesn't: annotations are released
// from Services, owned objects deleted (only when this policy controls them).
func (r *MeshPolicyReconciler) prune(ctx context.Context, p *meshv1alpha1.MeshPolicy, keep []meshv1alpha1.ResourceReference) error {
	kept := map[meshv1alpha1.ResourceReference]bool{}
	for _, ref := range keep {
		kept[ref] = true
	}
	for _, ref := range p.Status.Resources {
		if kept[ref] {
			continue
		}
		if isServiceRef(ref) {
			if err := r.annotateService(ctx, p.Namespace, ref.Name, nil); client.IgnoreNotFound(err) != nil {
				return err
			}
			continue
		}
		if err := r.deleteOwned(ctx, p, ref); err != nil {
			return err
		}
	}
	return nil
}

func (r *MeshPolicyReconciler) deleteOwned(ctx context.Context, p *meshv1alpha1.MeshPolicy, ref meshv1alpha1.ResourceReference) error {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil // not something this controller wrote
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gv.WithKind(ref.Kind))
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}, obj); err != nil {
		if client.IgnoreNotFound(err) == nil || meta.IsNoMatchError(err) {
			return nil // gone already, or its API with it
		}
		return fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
	}
	if !metav1.IsControlledBy(obj, p) {
		return nil
	}
	if err := r.Client.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s %s: %w", ref.Kind, ref.Name, err)
	}
	return nil
}

func refOf(o *unstructured.Unstructured) meshv1alpha1.ResourceReference {
	return meshv1alpha1.ResourceReference{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Name: o.GetName()}
}

func isServiceRef(r meshv1alpha1.ResourceReference) bool {
	return r.APIVersion == "v1" && r.Kind == "Service"
}

func sortRefs(refs []meshv1alpha1.ResourceReference) {
	sort.Slice(refs, func(i, j int) bool {
		a, b := refs[i], refs[j]
		if a.APIVersion != b.APIVersion {
			return a.APIVersion < b.APIVersion
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
}
