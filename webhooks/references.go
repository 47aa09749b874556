// Package webhooks holds Sluice's admission webhooks: defaulting from the API's getters, and
// the checks CEL can't do inside one object.
package webhooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get
// +kubebuilder:rbac:groups="",resources=services,verbs=get

// referenceChecker warns about references to objects that don't exist (yet). It warns rather
// than rejects: GitOps tools apply a folder in an order of their own, and the object referred
// to often arrives in the same sync. The controllers report a reference still missing in status.
type referenceChecker struct {
	reader client.Reader
}

// missing returns a warning when the object gvk/namespace/name does not exist; a failed
// lookup is a warning too, never a rejection.
func (c referenceChecker) missing(ctx context.Context, gvk schema.GroupVersionKind, namespace, name, field string) admission.Warnings {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	err := c.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return admission.Warnings{fmt.Sprintf("%s: %s %s/%s does not exist (yet)", field, gvk.Kind, namespace, name)}
	default:
		return admission.Warnings{fmt.Sprintf("%s: could not check that %s %s/%s exists: %v", field, gvk.Kind, namespace, name, err)}
	}
}
