package webhooks

import (
	"context"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
)

// The defaulting webhooks' paths, as in their kubebuilder:webhook markers.
const (
	mutateRolloutPath    = "/mutate-mesh-sluice-dev-v1alpha1-rollout"
	mutateHealthGatePath = "/mutate-mesh-sluice-dev-v1alpha1-healthgate"
	mutateMeshPolicyPath = "/mutate-mesh-sluice-dev-v1alpha1-meshpolicy"
)

// Setup registers the defaulting and validating webhooks of the three kinds. Reference checks
// read through the uncached API reader: one GET per review, and no cache of every Deployment
// and Service in the cluster. gateEgress is the manager's egress allow-list for HealthGate
// addresses (nil: no warning about them).
func Setup(mgr ctrl.Manager, gateEgress *egress.Policy) error {
	refs := referenceChecker{reader: mgr.GetAPIReader()}
	registerDefaulter(mgr, mutateRolloutPath, func() runtime.Object { return &meshv1alpha1.Rollout{} },
		admission.WithDefaulter(mgr.GetScheme(), RolloutDefaulter{}))
	registerDefaulter(mgr, mutateHealthGatePath, func() runtime.Object { return &meshv1alpha1.HealthGate{} },
		admission.WithDefaulter(mgr.GetScheme(), HealthGateDefaulter{}))
	registerDefaulter(mgr, mutateMeshPolicyPath, func() runtime.Object { return &meshv1alpha1.MeshPolicy{} },
		admission.WithDefaulter(mgr.GetScheme(), MeshPolicyDefaulter{}))

	if err := ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.Rollout{}).
		WithValidator(RolloutValidator{refs: refs}).Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.HealthGate{}).
		WithValidator(HealthGateValidator{Egress: gateEgress}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.MeshPolicy{}).
		WithValidator(MeshPolicyValidator{refs: refs}).Complete()
}

// registerDefaulter serves a kind's defaulter behind lenientDefaulter.
func registerDefaulter(mgr ctrl.Manager, path string, newObj func() runtime.Object, defaulter *admission.Webhook) {
	hook := &admission.Webhook{Handler: lenientDefaulter{
		decoder: admission.NewDecoder(mgr.GetScheme()),
		newObj:  newObj,
		next:    defaulter.Handler,
	}}
	mgr.GetWebhookServer().Register(path, hook)
}

// lenientDefaulter lets through, unchanged, an object that does not decode into the kind's Go
// type (a list where an object belongs, "5S" as a duration), and hands the rest to
// controller-runtime's defaulting handler. That handler refuses such an object with the decoder's
// error, which names no field; the API server's schema and CEL validation, which run after the
// mutating webhooks, reject it and say which field is wrong.
type lenientDefaulter struct {
	decoder admission.Decoder
	newObj  func() runtime.Object
	next    admission.Handler
}

// Handle decodes once to decide; a decodable object is decoded again by next, which keeps
// controller-runtime's patch (it leaves alone the fields the Go type would drop).
func (h lenientDefaulter) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Delete {
		if err := h.decoder.Decode(req, h.newObj()); err != nil {
			return admission.Allowed("not defaulted: the object does not decode; schema validation reports the field")
		}
	}
	return h.next.Handle(ctx, req)
}
