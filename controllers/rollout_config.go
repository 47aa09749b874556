package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/configcopy"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch;create;patch;delete

// Config tracking (spec.configTracking): each revision runs copies of the ConfigMaps and
// Secrets its template references, named by content; the slot's template points at them.
const (
	// LabelConfig marks what config tracking reads or writes: the user's source objects
	// (labelled so the cache holds them and their changes wake the Rollout) and the copies.
	LabelConfig       = "mesh.sluice.dev/config"
	labelConfigSource = "source"
	labelConfigCopy   = "copy"
	// annotationConfigSource on a copy names its source.
	annotationConfigSource = "mesh.sluice.dev/config-source"
	// annotationConfigAbsent on a released template lists the optional sources that did not
	// exist: their creation is a new revision too.
	annotationConfigAbsent = "mesh.sluice.dev/config-absent"
	// maxTrackedConfig bounds the objects one template may reference under config tracking
	// (status lists them per slot).
	maxTrackedConfig = 64
)

// configLabelled selects the ConfigMaps and Secrets config tracking reads or writes.
var configLabelled = func() labels.Selector {
	req, err := labels.NewRequirement(LabelConfig, selection.In, []string{labelConfigSource, labelConfigCopy})
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*req)
}()

// release is the pod template a slot gets when it takes the target's revision: the target's,
// or with config tracking its copy pointing at the config copies, which must exist first.
type release struct {
	template *corev1.PodTemplateSpec
	copies   []client.Object
	// config is the slot annotation listing the copies ("" without config tracking).
	config string
}

// releaseOf computes the release of target t. problem, when set, is what only a person can
// fix (a required ConfigMap or Secret that does not exist, too many of them).
func (r *RolloutReconciler) releaseOf(ctx context.Context, ro *meshv1alpha1.Rollout, t *appsv1.Deployment) (rel release, problem string, err error) {
	rel.template = &t.Spec.Template
	if ct := ro.Spec.ConfigTracking; ct == nil || !ct.Enabled {
		return rel, "", nil
	}
	refs := configcopy.Refs(&t.Spec.Template)
	if len(refs) > maxTrackedConfig {
		return rel, fmt.Sprintf("the target's pod template references %d ConfigMaps and Secrets; config tracking copies at most %d", len(refs), maxTrackedConfig), nil
	}
	copies := map[string]string{}
	var absent, missing, listed []string
	for _, ref := range refs {
		if ref.Kind == configcopy.KindSecret && !r.TrackSecrets {
			continue // --track-secrets=false: pods read the Secret itself
		}
		src, err := r.readConfigSource(ctx, ro.Namespace, ref)
		if err != nil {
			return rel, "", err
		}
		key := configcopy.Key(ref.Kind, ref.Name)
		if src == nil {
			if ref.Optional {
				absent = append(absent, key)
			} else {
				missing = append(missing, key)
			}
			continue
		}
		if sec, ok := src.(*corev1.Secret); ok && sec.Type == corev1.SecretTypeServiceAccountToken {
			continue // the API server makes these for a ServiceAccount; a copy can't be made
		}
		// Salted with the Rollout's and the source's UIDs: a copy's name lets nobody test
		// guesses of a Secret's value who can't read the Secret (its UID) anyway.
		hash, err := configcopy.ContentHash(src, string(ro.UID)+"/"+string(src.GetUID()))
		if err != nil {
			return rel, "", err
		}
		name := configcopy.CopyName(ref.Name, hash)
		cp, err := configcopy.Copy(src, name, copyLabels(ro), map[string]string{annotationConfigSource: ref.Name})
		if err != nil {
			return rel, "", err
		}
		copies[key] = name
		listed = append(listed, key+"="+name)
		rel.copies = append(rel.copies, cp)
	}
	if len(missing) > 0 {
		rel.copies = nil // nothing is released: nothing to make (and collect again)
		return rel, fmt.Sprintf("%s, referenced by the target's pod template, does not exist: config tracking can't copy it", strings.Join(missing, ", ")), nil
	}
	rel.template = configcopy.Rewrite(&t.Spec.Template, copies)
	if len(absent) > 0 {
		if rel.template.Annotations == nil {
			rel.template.Annotations = map[string]string{}
		}
		rel.template.Annotations[annotationConfigAbsent] = strings.Join(absent, ",")
	}
	rel.config = strings.Join(listed, ",")
	return rel, "", nil
}

// readConfigSource reads a source ConfigMap or Secret (nil when it does not exist), from the
// cache once it carries the config label, and labels it so that its changes reach the cache.
// The label is metadata only, under Sluice's field manager: GitOps tools leave it alone.
func (r *RolloutReconciler) readConfigSource(ctx context.Context, ns string, ref configcopy.Ref) (client.Object, error) {
	var obj client.Object = &corev1.ConfigMap{}
	if ref.Kind == configcopy.KindSecret {
		obj = &corev1.Secret{}
	}
	found, err := readThrough(ctx, r.Client, r.APIReader, client.ObjectKey{Namespace: ns, Name: ref.Name}, obj)
	if err != nil || !found {
		return nil, err
	}
	if obj.GetLabels()[LabelConfig] == "" {
		if err := r.Client.Patch(ctx, obj, labelPatch(LabelConfig, labelConfigSource), client.FieldOwner(traffic.FieldManager)); err != nil {
			// Still released (read through each time); only its changes are noticed later.
			log.FromContext(ctx).Info("config source not labelled for the cache", "kind", ref.Kind, "name", ref.Name, "error", err.Error())
		}
	}
	return obj, nil
}

func copyLabels(ro *meshv1alpha1.Rollout) map[string]string {
	return map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue, rollout.LabelRollout: ro.Name,
		traffic.LabelRolloutUID: string(ro.UID), LabelConfig: labelConfigCopy}
}

// applyCopies makes the config copies of the release exist before a slot uses them.
func (r *RolloutReconciler) applyCopies(ctx context.Context, ro *meshv1alpha1.Rollout, rel release) error {
	for _, cp := range rel.copies {
		live, err := r.cachedCopy(ctx, cp)
		if err != nil {
			return err
		}
		if live != nil && live.GetLabels()[LabelConfig] == labelConfigCopy && string(ro.UID) == live.GetLabels()[traffic.LabelRolloutUID] {
			continue // immutable, named by its content: it is what we would write
		}
		if err := r.applyOwned(ctx, ro, cp, live, true); err != nil {
			return err
		}
	}
	return nil
}

func (r *RolloutReconciler) cachedCopy(ctx context.Context, cp client.Object) (client.Object, error) {
	live := cp.DeepCopyObject().(client.Object)
	switch err := r.Client.Get(ctx, client.ObjectKeyFromObject(cp), live); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return live, nil
}

// collectCopies deletes the Rollout's config copies that neither slot's template (as the
// decision leaves it) nor the target's release uses. A copy made moments ago and not yet in
// the cache is not listed, so not deleted.
func (r *RolloutReconciler) collectCopies(ctx context.Context, ro *meshv1alpha1.Rollout, inUse []string) error {
	keep := map[string]bool{}
	for _, list := range inUse {
		for _, c := range parseConfig(list) {
			keep[c.Kind+"/"+c.Copy] = true
		}
	}
	sel := client.MatchingLabels{traffic.LabelRolloutUID: string(ro.UID), LabelConfig: labelConfigCopy}
	for _, list := range r.copyLists() {
		if err := r.Client.List(ctx, list, client.InNamespace(ro.Namespace), sel); err != nil {
			return err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			o := item.(client.Object)
			kind := configcopy.KindConfigMap
			if _, ok := o.(*corev1.Secret); ok {
				kind = configcopy.KindSecret
			}
			if keep[kind+"/"+o.GetName()] {
				continue
			}
			if err := r.Client.Delete(ctx, o, client.Preconditions{UID: ptr.To(o.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting unused config copy %s %s: %w", kind, o.GetName(), err)
			}
		}
	}
	return nil
}

// deleteCopies deletes every config copy of the Rollout (it is going: its slots are gone).
func (r *RolloutReconciler) deleteCopies(ctx context.Context, ro *meshv1alpha1.Rollout) error {
	sel := client.MatchingLabels{traffic.LabelRolloutUID: string(ro.UID), LabelConfig: labelConfigCopy}
	for _, list := range r.copyLists() {
		// Uncached: the cache may not have seen the last copies yet.
		if err := r.APIReader.List(ctx, list, client.InNamespace(ro.Namespace), sel); err != nil {
			return err
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			o := item.(client.Object)
			if err := r.Client.Delete(ctx, o, client.Preconditions{UID: ptr.To(o.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting config copy %s: %w", o.GetName(), err)
			}
		}
	}
	return nil
}

// parseConfig reads a slot's config annotation.
func parseConfig(s string) []meshv1alpha1.ConfigCopy {
	var out []meshv1alpha1.ConfigCopy
	for _, item := range strings.Split(s, ",") {
		key, cp, ok := strings.Cut(item, "=")
		kind, name, ok2 := strings.Cut(key, "/")
		if !ok || !ok2 {
			continue
		}
		out = append(out, meshv1alpha1.ConfigCopy{Kind: kind, Name: name, Copy: cp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind+out[i].Name < out[j].Kind+out[j].Name })
	return out
}

// stripCopyData keeps a cached config copy's metadata only (less managedFields, as every
// cached object): it is immutable and named by its content, so the controller needs to know
// only that it exists. Sources keep their content: it is hashed.
func stripCopyData(o any) (any, error) {
	o, err := cache.TransformStripManagedFields()(o)
	if err != nil {
		return o, err
	}
	switch c := o.(type) {
	case *corev1.ConfigMap:
		if c.Labels[LabelConfig] == labelConfigCopy {
			c.Data, c.BinaryData = nil, nil
		}
	case *corev1.Secret:
		if c.Labels[LabelConfig] == labelConfigCopy {
			c.Data, c.StringData = nil, nil
		}
	}
	return o, nil
}

// byConfig maps a config copy to its Rollout, and a source ConfigMap or Secret to the
// Rollouts of its namespace that track config (which of them reference it is for their
// reconcile to find: a cached list, no request).
func (r *RolloutReconciler) byConfig(ctx context.Context, o client.Object) []ctrl.Request {
	switch o.GetLabels()[LabelConfig] {
	case labelConfigCopy:
		return r.byRolloutLabel(ctx, o)
	case labelConfigSource:
	default:
		return nil
	}
	var list meshv1alpha1.RolloutList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []ctrl.Request
	for _, ro := range list.Items {
		if ct := ro.Spec.ConfigTracking; ct != nil && ct.Enabled {
			out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
		}
	}
	return out
}

// hasCopies: a slot runs config copies (config tracking was on): turned off, the next
// release leaves them unused and they are collected.
func (w *world) hasCopies() bool {
	for _, d := range w.slots {
		if d.Annotations[slots.AnnotationConfig] != "" {
			return true
		}
	}
	return false
}

// copyLists are the kinds config copies can be of.
func (r *RolloutReconciler) copyLists() []client.ObjectList {
	if !r.TrackSecrets {
		return []client.ObjectList{&corev1.ConfigMapList{}}
	}
	return []client.ObjectList{&corev1.ConfigMapList{}, &corev1.SecretList{}}
}
