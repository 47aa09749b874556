package routerules

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var routeResource = schema.GroupResource{Group: RouteGVK.Group, Resource: "httproutes"}

// patchOp is one JSON patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// WriteRules replaces spec.rules of the route with rules, guarded by spec.rules as read: a JSON
// patch that first tests them. A change of spec.rules since rt was read (a GitOps tool, or a
// writer that is not this route's) fails the write with a Conflict (apierrors.IsConflict); a
// change anywhere else (an annotation a MeshPolicy publishes, the status a Gateway writes) does
// not, unlike a resourceVersion precondition. The test compares JSON values as the server
// encodes them, and rt.Rules re-encodes to the same JSON (both use encoding/json).
func WriteRules(ctx context.Context, c client.Client, rt *Route, rules []any, fieldManager string) error {
	guard := patchOp{Op: "test", Path: "/spec/rules", Value: rt.Rules}
	if rt.Rules == nil {
		// No rules to test (a missing value cannot be tested for): fall back to the version.
		guard = patchOp{Op: "test", Path: "/metadata/resourceVersion", Value: rt.Obj.GetResourceVersion()}
	}
	ops := []patchOp{guard, {Op: "add", Path: "/spec/rules", Value: rules}}
	data, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encoding the rules of HTTPRoute %s/%s: %w", rt.Obj.GetNamespace(), rt.Obj.GetName(), err)
	}
	before := rt.Rules
	obj := rt.Obj.DeepCopy()
	err = c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, data), client.FieldOwner(fieldManager))
	if err == nil {
		rt.Obj = obj
		return nil
	}
	if apierrors.IsInvalid(err) && changedSince(ctx, c, rt, before) {
		// The test failed (the server answers a failed test with 422).
		return apierrors.NewConflict(routeResource, rt.Obj.GetName(), fmt.Errorf("spec.rules changed since it was read: %w", err))
	}
	return fmt.Errorf("updating the rules of HTTPRoute %s/%s: %w", rt.Obj.GetNamespace(), rt.Obj.GetName(), err)
}

// changedSince reads the route again: are its rules no longer those read?
func changedSince(ctx context.Context, c client.Client, rt *Route, rules []any) bool {
	now, found, err := Get(ctx, c, rt.Obj.GetNamespace(), rt.Obj.GetName())
	return err == nil && (!found || !Same(now.Rules, rules))
}

// DropTombstones removes the published Edits that only take settings out, once the rules
// carry what they say: each removal is guarded by the value read, so a policy that publishes
// again meanwhile keeps its new Edit (the patch then fails, and the tombstone waits for the
// next write). Nothing is sent when there is no tombstone.
func DropTombstones(ctx context.Context, c client.Client, rt *Route, fieldManager string) error {
	ann := rt.Obj.GetAnnotations()
	var ops []patchOp
	for _, key := range Tombstones(ann) {
		path := "/metadata/annotations/" + escapePointer(key)
		ops = append(ops, patchOp{Op: "test", Path: path, Value: ann[key]}, patchOp{Op: "remove", Path: path})
	}
	if len(ops) == 0 {
		return nil
	}
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	obj := rt.Obj.DeepCopy()
	if err := c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, data), client.FieldOwner(fieldManager)); err != nil {
		return fmt.Errorf("dropping composed MeshPolicy tombstones from HTTPRoute %s/%s: %w", rt.Obj.GetNamespace(), rt.Obj.GetName(), err)
	}
	rt.Obj = obj
	return nil
}

// Tombstones are the annotation keys of the tombstones published in annotations.
func Tombstones(annotations map[string]string) []string {
	var out []string
	for _, e := range Published(annotations) {
		if e.Tombstone() {
			out = append(out, AnnotationKey(e.Policy))
		}
	}
	return out
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}
