package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// apply makes the decision true. When traffic leaves a slot (rollback, abort, superseded
// release), the route is written first and nothing else can block it; otherwise Services come
// first (a route must not point at a Service that does not exist yet). Then the slots, then
// the target's scale.
func (r *RolloutReconciler) apply(ctx context.Context, ro *meshv1alpha1.Rollout, d rollout.Decision, w *world) error {
	stable := d.Status.StableSlot
	var split *traffic.Split
	if d.Traffic != nil {
		s := r.split(ro, stable, d.Traffic, r.probePath(ro, w, d.Traffic.ProbeSlot))
		split = &s
	}
	routeFirst := split != nil && trafficLeaves(w.obs.Traffic, d.Traffic, stable.Other())
	if routeFirst {
		if err := r.applyRoute(ctx, *split); err != nil {
			return err
		}
	}
	owned := []client.Object{slots.SlotService(ro, meshv1alpha1.SlotA), slots.SlotService(ro, meshv1alpha1.SlotB), slots.ApexService(ro, stable)}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		owned = append(owned, slots.PreviewService(ro, bg.PreviewService, stable.Other()))
	}
	for _, o := range owned {
		// Not forced: a Service someone else owns (e.g. in Git) is a conflict to report.
		var live client.Object
		if svc, ok := w.services[o.GetName()]; ok {
			live = svc
		}
		if err := r.applyOwned(ctx, ro, o, live, false); err != nil {
			return err
		}
	}
	if split != nil && !routeFirst {
		if err := r.applyRoute(ctx, *split); err != nil {
			return err
		}
	}
	if len(w.release.copies) > 0 {
		// The copies first: a pod of a slot that referenced a missing copy would not start.
		// Every time, not only when a slot takes the release: a copy someone deleted comes
		// back while its source still holds that content (a cached check, no write).
		if err := r.applyCopies(ctx, ro, w.release); err != nil {
			return err
		}
	}
	inUse := []string{w.release.config}
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		dep, err := r.applySlot(ctx, ro, s, d.Slots[s], w)
		if err != nil {
			return err
		}
		// A slot scaled to zero uses its copies no more: it runs a template again only
		// with a release, whose copies w.release keeps.
		if dep != nil && ptr.Deref(dep.Spec.Replicas, 1) > 0 {
			inUse = append(inUse, dep.Annotations[slots.AnnotationConfig])
		} else if cur := w.slots[s]; dep == nil && cur != nil && ptr.Deref(cur.Spec.Replicas, 1) > 0 {
			inUse = append(inUse, cur.Annotations[slots.AnnotationConfig])
		}
	}
	if ct := ro.Spec.ConfigTracking; (ct != nil && ct.Enabled) || w.hasCopies() {
		if err := r.collectCopies(ctx, ro, inUse); err != nil {
			return err
		}
	}
	if d.ScaleTargetToZero && w.target != nil && ptr.Deref(w.target.Spec.Replicas, 1) != 0 {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`))
		if err := r.Client.Patch(ctx, w.target, patch, client.FieldOwner(traffic.FieldManager)); err != nil {
			return fmt.Errorf("scaling target Deployment %s to zero: %w", w.target.Name, err)
		}
	}
	return nil
}

// trafficLeaves: the intent sends a slot less than the route does now (a lower weight, or an
// A/B rule or mirror it drops).
func trafficLeaves(now rollout.TrafficState, want *rollout.TrafficIntent, canary meshv1alpha1.Slot) bool {
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		reaches := want.Weights[s] > 0 || (s == canary && (want.Matches || want.MirrorPercent > 0)) || s == want.ProbeSlot
		if want.Weights[s] < now.Weights[s] || (now.Reaches[s] && !reaches) {
			return true
		}
	}
	return false
}

func (r *RolloutReconciler) applyRoute(ctx context.Context, split traffic.Split) error {
	if err := r.Router.Apply(ctx, split); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("route %s: %w: %w", split.RouteName(), errRouteChanged, err)
		}
		return fmt.Errorf("route %s: %w", split.RouteName(), err)
	}
	return nil
}

// applySlot applies one slot Deployment: a new template (the target's release) only when the
// decision asks for the target's revision; otherwise its current template, so that only the
// replica count can change. A slot to keep is not written at all. It returns the Deployment
// written (nil when none).
func (r *RolloutReconciler) applySlot(ctx context.Context, ro *meshv1alpha1.Rollout, s meshv1alpha1.Slot, in rollout.SlotIntent, w *world) (*appsv1.Deployment, error) {
	if in.Keep {
		return nil, nil
	}
	cur := w.slots[s]
	var dep *appsv1.Deployment
	var err error
	switch {
	case newTemplate(in, cur):
		if w.target == nil || w.obs.Target.Revision != in.Revision {
			return nil, fmt.Errorf("slot %s: revision %s is no longer the target's template", s, in.Revision)
		}
		dep, err = slots.Deployment(ro, s, w.target, w.release.template, in.Revision, in.Replicas, w.release.config)
	case cur != nil:
		dep, err = slots.Deployment(ro, s, cur, &cur.Spec.Template, cur.Annotations[rollout.AnnotationRevision], in.Replicas, cur.Annotations[slots.AnnotationConfig])
	default:
		return nil, nil // nothing to run in it yet
	}
	if err != nil {
		return nil, err
	}
	var live client.Object
	if cur != nil {
		live = cur
	} else if w.foreignSlots[s] != nil {
		live = w.foreignSlots[s]
	}
	return dep, r.applyOwned(ctx, ro, dep, live, true)
}

// newTemplate: the intent gives the slot the target's revision, which it does not run.
func newTemplate(in rollout.SlotIntent, cur *appsv1.Deployment) bool {
	return !in.Keep && in.Revision != "" && (cur == nil || cur.Annotations[rollout.AnnotationRevision] != in.Revision)
}

// errNotOurs: an object Sluice would write exists and is not the Rollout's; only a person can
// resolve that (rename, or remove it from Git).
var errNotOurs = errors.New("exists and is not this Rollout's")

// notOursRecheck is how often a Rollout stalled on an object that is not its own looks again.
const notOursRecheck = 30 * time.Second

// applyOwned server-side applies obj as field manager sluice, marked as the Rollout's by label
// (no ownerReference: see rollout.LabelRolloutUID). live is the object as the cache has it
// (nil when missing). Nothing is sent when this manager's last apply of the same content left
// the object at the resourceVersion it still has: a steady Rollout makes no writes.
func (r *RolloutReconciler) applyOwned(ctx context.Context, ro *meshv1alpha1.Rollout, obj client.Object, live client.Object, force bool) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if live == nil {
		// Missing from the cache: make sure it is missing (a cache that lags would otherwise
		// let the apply merge into an object someone else just created).
		cur := obj.DeepCopyObject().(client.Object)
		switch err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), cur); {
		case err == nil:
			live = cur
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("reading %s %s: %w", kind, obj.GetName(), err)
		}
	}
	if live != nil && !slots.Ours(live, ro) {
		return fmt.Errorf("%s %s %w: rename spec.service (or the Rollout), or delete it or remove it from Git", kind, obj.GetName(), errNotOurs)
	}
	u, err := toApply(obj)
	if err != nil {
		return err
	}
	key := kind + " " + ro.Namespace + "/" + obj.GetName()
	hash := contentHash(u.Object)
	if live != nil && r.applied.unchanged(key, hash, live.GetResourceVersion()) {
		return nil
	}
	opts := []client.ApplyOption{client.FieldOwner(traffic.FieldManager)}
	if force {
		opts = append(opts, client.ForceOwnership)
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("%s %s is managed by someone else (%w): remove it from Git or rename spec.service: %w", kind, u.GetName(), errNotOurs, err)
		}
		return fmt.Errorf("applying %s %s: %w", kind, u.GetName(), err)
	}
	r.applied.record(key, ro.Namespace, ro.Name, hash, u.GetResourceVersion())
	return nil
}

// toApply is obj as an apply configuration: no status, no empty creation timestamps (they
// would be claimed).
func toApply(obj client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return u, nil
}

// errRouteChanged: the route changed between read and write (its writes are guarded by the
// resourceVersion read; a MeshPolicy writes rule settings into it too).
var errRouteChanged = errors.New("the route changed while it was being written")

// terminal: only a change by a person can fix err; retrying would only loop.
func terminal(err error) bool {
	for _, target := range []error{errNotOurs, gatewayapi.ErrRouteNotOwned, gatewayapi.ErrNoDrivenRule, gatewayapi.ErrRouteNotFound, gatewayapi.ErrInvalidSplit} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// applyFailed reports an apply failure in status (through the rollout package, the one writer
// of conditions) and decides how to retry: a misconfiguration only a person can fix is Stalled
// and waits for a change (the watches bring it back) or, while a release has timers running
// (analysis, pauses), for its next timer only, so that a failing canary is still judged and
// its rollback, written route first, still goes out; a transient failure backs off (at most a
// few seconds, see rolloutRateLimiter); a route that changed under the write is read again.
func (r *RolloutReconciler) applyFailed(ctx context.Context, ro *meshv1alpha1.Rollout, err error, next time.Duration) (ctrl.Result, error) {
	if ctx.Err() != nil {
		return ctrl.Result{}, ctx.Err() // shutting down: the next manager applies it
	}
	if errors.Is(err, errRouteChanged) {
		return ctrl.Result{}, err // not a failure to show; retried with backoff
	}
	stuck := terminal(err)
	before := ro.DeepCopy()
	rollout.ApplyFailed(&ro.Status, err.Error(), stuck, ro.Generation)
	if !equality.Semantic.DeepEqual(before.Status, ro.Status) {
		if perr := r.Client.Status().Patch(ctx, ro, client.MergeFrom(before)); perr != nil {
			log.FromContext(ctx).Info("could not report the apply failure in status", "error", perr.Error())
		}
	}
	if errors.Is(err, errNotOurs) && (next == 0 || next > notOursRecheck) {
		// A foreign Deployment under a slot's name is outside the cache (it has no rollout
		// label): its removal brings no event, so look again now and then.
		next = notOursRecheck
	}
	switch {
	case !stuck:
		return ctrl.Result{}, err
	case next > 0:
		log.FromContext(ctx).Error(err, "stalled until a person fixes it; the release's timers keep running", "next", next)
		return ctrl.Result{RequeueAfter: next}, nil
	}
	return ctrl.Result{}, reconcile.TerminalError(err)
}

// appliedObjects remembers, per object, the content this manager applied last and the
// resourceVersion the API server answered. Kept in memory: a restarted manager applies
// everything once, then goes quiet again.
type appliedObjects struct {
	mu sync.Mutex
	m  map[string]appliedRecord
}

type appliedRecord struct {
	namespace, rollout, hash, resourceVersion string
}

func (a *appliedObjects) unchanged(key, hash, resourceVersion string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.m[key]
	return ok && rec.hash == hash && rec.resourceVersion == resourceVersion
}

func (a *appliedObjects) record(key, namespace, rolloutName, hash, resourceVersion string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]appliedRecord{}
	}
	a.m[key] = appliedRecord{namespace: namespace, rollout: rolloutName, hash: hash, resourceVersion: resourceVersion}
}

// forget drops the records of a Rollout that is gone.
func (a *appliedObjects) forget(namespace, rolloutName string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, rec := range a.m {
		if rec.namespace == namespace && rec.rollout == rolloutName {
			delete(a.m, k)
		}
	}
}

// contentHash identifies desired content (encoding/json sorts map keys).
func contentHash(v map[string]any) string {
	data, _ := json.Marshal(v)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

func condition(typ string, status bool, reason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
}
