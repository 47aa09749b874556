// Package slots builds the objects a Rollout runs its revisions in: two slot Deployments
// (<rollout>-a, <rollout>-b), their Services (<service>-a, <service>-b), the apex Service that
// selects the stable slot, and a blue-green preview Service that selects the other one.
// Pure: objects in, objects out; the controller applies them.
package slots

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// PortName is the name of the port of every Service Sluice creates.
const PortName = "http"

// AnnotationConfig on a slot Deployment lists the config copies its template uses
// ("ConfigMap/app=app-3f9c0a1b2d,Secret/db=db-0c1d2e3f4a"; config tracking): status shows
// them, and garbage collection keeps them while the slot exists.
const AnnotationConfig = "mesh.sluice.dev/config"

// Ours reports whether obj is the Rollout's: it carries the Rollout's UID label, or (made by
// an older Sluice) a controller reference to it. Nothing of a Rollout has an ownerReference
// to it: the garbage collector must not delete a slot or Service that serves traffic when
// the Rollout is deleted (with foreground propagation it would, at once); the Rollout's
// finalizer hands traffic back first, then deletes them.
func Ours(obj metav1.Object, r *meshv1alpha1.Rollout) bool {
	return traffic.RolloutOf(obj) == r.UID
}

// Deployment is the slot Deployment running template at revision with replicas, using the
// config copies listed in config (see AnnotationConfig; "" for none). The selector is the
// target's plus the rollout and slot labels, so the two slots never share pods.
func Deployment(r *meshv1alpha1.Rollout, slot meshv1alpha1.Slot, target *appsv1.Deployment, template *corev1.PodTemplateSpec, revision string, replicas int32, config string) (*appsv1.Deployment, error) {
	if target.Spec.Selector == nil {
		return nil, fmt.Errorf("target Deployment %s has no selector", target.Name)
	}
	sel := target.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[rollout.LabelRollout] = r.Name
	sel.MatchLabels[rollout.LabelSlot] = string(slot)

	tmpl := template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[rollout.LabelRollout] = r.Name
	tmpl.Labels[rollout.LabelSlot] = string(slot)
	tmpl.Labels[rollout.LabelRevision] = revision

	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name: r.GetSlotDeploymentName(slot), Namespace: r.Namespace,
			Labels:      labels(r, slot),
			Annotations: map[string]string{rollout.AnnotationRevision: revision},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			Selector:                sel,
			Template:                *tmpl,
			Strategy:                target.Spec.Strategy,
			MinReadySeconds:         target.Spec.MinReadySeconds,
			RevisionHistoryLimit:    target.Spec.RevisionHistoryLimit,
			ProgressDeadlineSeconds: target.Spec.ProgressDeadlineSeconds,
		},
	}
	if config != "" {
		d.Annotations[AnnotationConfig] = config
	}
	return d, nil
}

// SlotService is the Service of one slot: the route's backend for it.
func SlotService(r *meshv1alpha1.Rollout, slot meshv1alpha1.Slot) *corev1.Service {
	return service(r, r.GetSlotServiceName(slot), slot, labels(r, slot))
}

// ApexService is the Service clients call; it selects the stable slot, so callers that bypass
// the route (and GAMMA's Service parent) reach the stable revision.
func ApexService(r *meshv1alpha1.Rollout, stable meshv1alpha1.Slot) *corev1.Service {
	return service(r, r.GetServiceName(), stable, labels(r, ""))
}

// HandedBackService is the apex Service of a deleted Rollout: it selects the target
// Deployment's pods and carries no mark of the Rollout (nothing deletes it with the Rollout).
// The slots' pods carry the target's labels too (their template is the target's): while they
// run, podTemplateHash narrows the selector to the target's current pods, so that no request
// is sent to a slot pod that is about to go; "" gives the final selector.
func HandedBackService(r *meshv1alpha1.Rollout, target *appsv1.Deployment, podTemplateHash string) (*corev1.Service, error) {
	sel := map[string]string{}
	if s := target.Spec.Selector; s != nil && len(s.MatchExpressions) == 0 && len(s.MatchLabels) > 0 {
		for k, v := range s.MatchLabels {
			sel[k] = v
		}
	} else {
		// A Service selects by equality only: the template's labels select its pods.
		for k, v := range target.Spec.Template.Labels {
			sel[k] = v
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("target Deployment %s has no labels a Service could select its pods by", target.Name)
	}
	if podTemplateHash != "" {
		sel[appsv1.DefaultDeploymentUniqueLabelKey] = podTemplateHash
	}
	svc := service(r, r.GetServiceName(), "", nil)
	svc.Spec.Selector = sel
	return svc, nil
}

// PreviewService reaches the slot being released, before a blue-green switch.
func PreviewService(r *meshv1alpha1.Rollout, name string, canary meshv1alpha1.Slot) *corev1.Service {
	return service(r, name, canary, labels(r, ""))
}

func service(r *meshv1alpha1.Rollout, name string, slot meshv1alpha1.Slot, l map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: l},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{rollout.LabelRollout: r.Name, rollout.LabelSlot: string(slot)},
			Ports: []corev1.ServicePort{{
				Name: PortName, Port: r.Spec.Service.Port, TargetPort: r.Spec.Service.GetTargetPort(), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

func labels(r *meshv1alpha1.Rollout, slot meshv1alpha1.Slot) map[string]string {
	// The EndpointSlice controller copies a Service's labels onto its slices: managed-by is
	// how the controller watches only the slot Services' slices.
	l := map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue, rollout.LabelRollout: r.Name, traffic.LabelRolloutUID: string(r.UID), traffic.LabelWatched: traffic.WatchedValue}
	if slot != "" {
		l[rollout.LabelSlot] = string(slot)
	}
	return l
}
