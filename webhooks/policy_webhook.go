package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	cradmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/admission"
)

// PolicyPath is where the API server sends objects for the Rego policy checks
// (config/webhook/policy_webhook.yaml).
const PolicyPath = "/validate-sluice-policies"

var (
	policyDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_admission_policy_decisions_total",
		Help: "Policy reviews at admission by kind and decision (allowed, warned, denied, error).",
	}, []string{"kind", "decision"})
	policyLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_admission_policy_review_seconds",
		Help:    "Time to review one admission request with the policies in force, from decoding to the answer.",
		Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"kind"})
	policyViolations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_admission_policy_violations_total",
		Help: "Policy violations found at admission (audit-mode ones are recorded only here and in the log).",
	}, []string{"policy", "mode", "kind", "namespace"})
)

func init() {
	metrics.Registry.MustRegister(policyDecisions, policyLatency, policyViolations)
}

// PolicyHandler reviews admission requests with the policy engine. Namespace labels and the
// Rollouts that release a Deployment come from the manager's cache.
type PolicyHandler struct {
	Engine admission.Engine
	// Reader is the manager's cache (namespace labels); APIReader reads what the cache may
	// not have yet (a namespace created in the same apply) and the Rollouts of a namespace
	// (exact: a Rollout created a moment before its Deployment must count).
	Reader    client.Reader
	APIReader client.Reader
	// Exempt are the users whose requests are not reviewed: the operator itself. What it
	// writes follows from objects already admitted, and refusing it would strand a release
	// (a slot Deployment, a finalizer, a scale to zero).
	Exempt []string
}

// SetupPolicies serves the policy checks on the manager's webhook server.
func SetupPolicies(mgr ctrl.Manager, engine admission.Engine, exempt ...string) error {
	// Every review reads its namespace's labels: the informer starts with the manager (and
	// is synced before the policies load and the manager reports ready), not on the first
	// review, which would wait for it past the webhook's timeout on a big cluster.
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1Namespace)
	if _, err := mgr.GetCache().GetInformer(context.Background(), ns); err != nil {
		return err
	}
	// Its own uncached client: reads at admission must not queue behind the controllers'
	// client-side rate limit (the API server's priority and fairness protects it).
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.RateLimiter = nil // the manager's shared limiter (main.go) would override QPS
	cfg.QPS, cfg.Burst = 500, 1000
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(PolicyPath, &webhook.Admission{Handler: &PolicyHandler{Engine: engine, Reader: mgr.GetClient(), APIReader: direct, Exempt: exempt}})
	return nil
}

// Handle implements the controller-runtime admission handler.
func (h *PolicyHandler) Handle(ctx context.Context, req cradmission.Request) cradmission.Response {
	start := time.Now()
	kind := req.Kind.Kind
	resp := h.review(ctx, req)
	decision := "allowed"
	switch {
	case resp.Result != nil && resp.Result.Code >= http.StatusInternalServerError:
		decision = "error"
	case !resp.Allowed:
		decision = "denied"
	case len(resp.Warnings) > 0:
		decision = "warned"
	}
	policyDecisions.WithLabelValues(kind, decision).Inc()
	policyLatency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	return resp
}

func (h *PolicyHandler) review(ctx context.Context, req cradmission.Request) cradmission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return cradmission.Allowed("")
	}
	if slices.Contains(h.Exempt, req.UserInfo.Username) {
		return cradmission.Allowed("the operator's own write")
	}
	in := admission.Input{Operation: admission.Operation(req.Operation),
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups, DryRun: req.DryRun != nil && *req.DryRun}
	if err := json.Unmarshal(req.Object.Raw, &in.Object); err != nil {
		return cradmission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the object: %w", err))
	}
	if len(req.OldObject.Raw) > 0 {
		if err := json.Unmarshal(req.OldObject.Raw, &in.OldObject); err != nil {
			return cradmission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the old object: %w", err))
		}
	}
	// Policies judge what a change asks for. An update that leaves spec as it was (an
	// annotation such as mesh.sluice.dev/action=abort, a label, a finalizer) or that finishes
	// a deletion is never refused: a person's abort must get through even when a newer
	// policy rejects the object. Existing objects are judged by the audit.
	if req.Operation == admissionv1.Update && (reflect.DeepEqual(in.Object["spec"], in.OldObject["spec"]) || deleting(in.Object)) {
		return cradmission.Allowed("spec unchanged")
	}
	// The namespace's labels decide which policies apply: without them the review can't be
	// made, and the webhook's failure policy decides (Fail for Sluice's kinds).
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1Namespace)
	err := h.Reader.Get(ctx, types.NamespacedName{Name: req.Namespace}, ns)
	if apierrors.IsNotFound(err) {
		err = h.APIReader.Get(ctx, types.NamespacedName{Name: req.Namespace}, ns)
	}
	if err != nil {
		return cradmission.Errored(http.StatusInternalServerError, fmt.Errorf("reading the labels of namespace %s: %w", req.Namespace, err))
	}
	in.NamespaceLabels = ns.Labels
	if req.Kind.Group == "apps" && req.Kind.Kind == "Deployment" {
		released, err := h.releasedBy(ctx, req.Namespace, req.Name)
		if err != nil {
			return cradmission.Errored(http.StatusInternalServerError, fmt.Errorf("listing the Rollouts of namespace %s: %w", req.Namespace, err))
		}
		in.ReleasedBy = released
	}

	v := h.Engine.Review(ctx, in)
	object := fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, objectName(req, in.Object))
	var denied, warnings []string
	for _, x := range v.Violations {
		policyViolations.WithLabelValues(x.Policy, string(x.Mode), req.Kind.Kind, req.Namespace).Inc()
		switch x.Mode {
		case admission.Deny:
			denied = append(denied, x.String())
		case admission.Warn:
			warnings = append(warnings, fmt.Sprintf("%s: %s", object, x))
		case admission.Audit:
			ctrl.LoggerFrom(ctx).Info("policy violation (audit)", "object", object, "policy", x.Policy, "field", x.Field, "message", x.Message)
		}
	}
	if len(denied) > 0 {
		resp := cradmission.Denied(fmt.Sprintf("%s is refused by admission policy: %s", object, strings.Join(denied, "; ")))
		return resp.WithWarnings(warnings...)
	}
	return cradmission.Allowed("").WithWarnings(warnings...)
}

// releasedBy names the Rollouts of the namespace whose target is the Deployment.
func (h *PolicyHandler) releasedBy(ctx context.Context, ns, name string) ([]string, error) {
	var list meshv1alpha1.RolloutList
	if err := h.APIReader.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range list.Items {
		if r.Spec.TargetRef.Name == name {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

func deleting(obj map[string]any) bool {
	md, _ := obj["metadata"].(map[string]any)
	return md["deletionTimestamp"] != nil
}

// objectName is the request's name, or the object's generateName for a create without one.
func objectName(req cradmission.Request, obj map[string]any) string {
	if req.Name != "" {
		return req.Name
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		if g, _ := md["generateName"].(string); g != "" {
			return g + "*"
		}
	}
	return "(unnamed)"
}

var corev1Namespace = corev1.SchemeGroupVersion.WithKind("Namespace")

// OwnUser is the user the operator's requests reach the API server as, so that the policy
// webhook can leave them alone.
func OwnUser(ctx context.Context, cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("asking the API server who the operator is: %w", err)
	}
	return r.Status.UserInfo.Username, nil
}
