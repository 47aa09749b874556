package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// A manual action is never lost and applied once, also across crashes:
//
//  1. accept: one write, guarded by the resourceVersion read, moves the action from the
//     user's annotation to the accepted-action annotation with a fresh ID. From then on it
//     lives in an annotation only the controller removes.
//  2. decide: the decision it causes and the ID go into status in one write guarded by the
//     resourceVersion (status.lastAction.id).
//  3. confirm: the accepted-action annotation is removed.
//
// A crash or failed write after 1 finds the accepted action with an ID status does not have:
// it is applied. After 2, status has the ID: it is only removed. A newer request in the user's
// annotation waits until the accepted one is confirmed.

// acceptedAction is an action accepted and not yet confirmed.
type acceptedAction struct {
	action meshv1alpha1.RolloutAction
	id     string
	// applied: status already records the ID; only the annotation is left to remove.
	applied bool
}

// acceptAction returns the accepted action of the Rollout, first accepting the user's
// annotation if no accepted action is pending. ro is updated by the write.
func (r *RolloutReconciler) acceptAction(ctx context.Context, ro *meshv1alpha1.Rollout) (*acceptedAction, error) {
	if v, ok := ro.Annotations[meshv1alpha1.AcceptedActionAnnotation]; ok {
		a, id, err := parseAccepted(v)
		if err != nil {
			r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "InvalidAction", "Action", err.Error())
			return &acceptedAction{applied: true}, nil // nothing to apply; remove it
		}
		applied := ro.Status.LastAction != nil && ro.Status.LastAction.ID == id
		return &acceptedAction{action: a, id: id, applied: applied}, nil
	}
	v, ok := ro.Annotations[meshv1alpha1.ActionAnnotation]
	if !ok {
		return nil, nil
	}
	a, parseErr := parseAction(v)
	accepted := ""
	var out *acceptedAction
	if parseErr == nil {
		out = &acceptedAction{action: a, id: newActionID()}
		accepted = string(a) + "/" + out.id
	}
	// Guarded by the version read: a different request written meanwhile is not dropped unseen.
	patch := annotationPatch(map[string]*string{meshv1alpha1.ActionAnnotation: nil, meshv1alpha1.AcceptedActionAnnotation: ptrOrNil(accepted)}, ro.ResourceVersion)
	if err := r.Client.Patch(ctx, ro, patch); err != nil {
		return nil, fmt.Errorf("accepting the action %q: %w", v, err)
	}
	if parseErr != nil {
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "InvalidAction", "Action", parseErr.Error())
	}
	return out, nil
}

// confirmAction removes the accepted-action annotation once status records its ID. Only this
// controller writes that key, and one reconcile per Rollout runs at a time, so no
// resourceVersion guard is needed (none that could fail on an unrelated change).
func (r *RolloutReconciler) confirmAction(ctx context.Context, ro *meshv1alpha1.Rollout) error {
	if _, ok := ro.Annotations[meshv1alpha1.AcceptedActionAnnotation]; !ok {
		return nil
	}
	patch := annotationPatch(map[string]*string{meshv1alpha1.AcceptedActionAnnotation: nil}, "")
	if err := r.Client.Patch(ctx, ro, patch); err != nil {
		return fmt.Errorf("confirming the accepted action: %w", err)
	}
	return nil
}

func parseAction(v string) (meshv1alpha1.RolloutAction, error) {
	switch a := meshv1alpha1.RolloutAction(strings.TrimSpace(v)); a {
	case meshv1alpha1.ActionPromote, meshv1alpha1.ActionPromoteFull, meshv1alpha1.ActionAbort, meshv1alpha1.ActionRetry, meshv1alpha1.ActionPause, meshv1alpha1.ActionResume:
		return a, nil
	}
	return "", fmt.Errorf("annotation %s=%q ignored: allowed values are promote, promote-full, abort, retry, pause, resume", meshv1alpha1.ActionAnnotation, v)
}

func parseAccepted(v string) (meshv1alpha1.RolloutAction, string, error) {
	action, id, ok := strings.Cut(v, "/")
	if !ok || id == "" {
		return "", "", fmt.Errorf("annotation %s=%q is not <action>/<id>: removed", meshv1alpha1.AcceptedActionAnnotation, v)
	}
	a, err := parseAction(action)
	if err != nil {
		return "", "", fmt.Errorf("annotation %s=%q: %w", meshv1alpha1.AcceptedActionAnnotation, v, err)
	}
	return a, id, nil
}

// newActionID is a random request ID (8 bytes, hex).
func newActionID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// annotationPatch is a merge patch setting (value) or removing (nil) annotations, guarded by
// resourceVersion when one is given.
func annotationPatch(set map[string]*string, resourceVersion string) client.Patch {
	ann := map[string]any{}
	for k, v := range set {
		if v == nil {
			ann[k] = nil
		} else {
			ann[k] = *v
		}
	}
	meta := map[string]any{"annotations": ann}
	if resourceVersion != "" {
		meta["resourceVersion"] = resourceVersion
	}
	return rawMergePatch(map[string]any{"metadata": meta})
}

func ptrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rawMergePatch encodes v as a JSON merge patch (v holds only strings, maps and nil).
func rawMergePatch(v map[string]any) client.Patch {
	data, _ := json.Marshal(v)
	return client.RawPatch(types.MergePatchType, data)
}
