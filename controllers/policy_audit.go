package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-mesh/sluice/internal/admission"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts;healthgates;meshpolicies,verbs=list
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=list
// +kubebuilder:rbac:groups="",resources=services,verbs=list
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

var (
	policyAuditViolations = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_policy_violations",
		Help: "Violations of each policy among existing objects at the last audit, by mode, kind and namespace.",
	}, []string{"policy", "mode", "kind", "namespace"})
	policyAuditSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_policy_audit_duration_seconds", Help: "Duration of the last policy audit.",
	})
	policyAuditObjects = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_policy_audit_objects", Help: "Objects reviewed by the last policy audit.",
	})
)

func init() {
	metrics.Registry.MustRegister(policyAuditViolations, policyAuditSeconds, policyAuditObjects)
}

// Audit defaults.
const (
	DefaultPolicyAuditInterval = 10 * time.Minute
	// DefaultPolicyAuditEvents bounds the events one audit sends, so that a policy that
	// flags everything can't flood the API server; metrics still count every violation.
	DefaultPolicyAuditEvents = 50
	auditPageSize            = 250
	auditDebounce            = time.Second
)

// auditedKinds are listed by the audit: Sluice's kinds everywhere, the others in namespaces
// labelled for policy checks.
var auditedKinds = []schema.GroupVersionKind{
	{Group: "mesh.sluice.dev", Version: "v1alpha1", Kind: "Rollout"},
	{Group: "mesh.sluice.dev", Version: "v1alpha1", Kind: "HealthGate"},
	{Group: "mesh.sluice.dev", Version: "v1alpha1", Kind: "MeshPolicy"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "", Version: "v1", Kind: "Service"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"},
}

// PolicyAuditor reviews existing objects with the policies in force: periodically and soon
// after a policy change. It runs on the leader only (events, metrics of record).
type PolicyAuditor struct {
	// Reader lists page by page, uncached: the audit must not keep every Deployment of the
	// cluster in memory.
	Reader   client.Reader
	Engine   admission.Engine
	Recorder events.EventRecorder
	// Namespaces restricts the audit (the manager's --namespaces); empty audits all.
	Namespaces []string
	Interval   time.Duration
	MaxEvents  int

	trigger chan struct{}
	mu      sync.Mutex // one audit at a time
	// reported are the violations already sent as events (object UID + policy + field),
	// so that the next audit sends events for new ones only.
	reported map[string]bool
}

// AuditResult is one audit pass.
type AuditResult struct {
	Objects    int
	Violations int
	Events     int
	Took       time.Duration
}

// Trigger asks for an audit soon (after a policy change); it never blocks.
func (a *PolicyAuditor) Trigger() {
	a.init()
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

func (a *PolicyAuditor) init() {
	if a.trigger == nil {
		a.trigger = make(chan struct{}, 1)
	}
}

// NeedLeaderElection makes the audit run on the leader only.
func (a *PolicyAuditor) NeedLeaderElection() bool { return true }

// Start runs audits until ctx ends.
func (a *PolicyAuditor) Start(ctx context.Context) error {
	a.init()
	interval := a.Interval
	if interval <= 0 {
		interval = DefaultPolicyAuditInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	log := ctrl.LoggerFrom(ctx).WithName("policy-audit")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-a.trigger:
			// Several changes in a row (kubectl apply -f dir/) make one audit.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(auditDebounce):
			}
		}
		res, err := a.Run(ctx)
		if err != nil {
			log.Error(err, "policy audit failed")
			continue
		}
		log.V(1).Info("policy audit", "objects", res.Objects, "violations", res.Violations, "events", res.Events, "took", res.Took)
	}
}

// Run audits once.
func (a *PolicyAuditor) Run(ctx context.Context) (AuditResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	start := time.Now()
	maxEvents := a.MaxEvents
	if maxEvents <= 0 {
		maxEvents = DefaultPolicyAuditEvents
	}
	nsLabels, err := a.namespaceLabels(ctx)
	if err != nil {
		return AuditResult{}, err
	}
	objs, err := a.list(ctx, nsLabels)
	if err != nil {
		return AuditResult{}, err
	}
	released := map[string][]string{}
	for _, o := range objs {
		if o.GetKind() == "Rollout" {
			target, _, _ := unstructured.NestedString(o.Object, "spec", "targetRef", "name")
			released[o.GetNamespace()+"/"+target] = append(released[o.GetNamespace()+"/"+target], o.GetName())
		}
	}
	counts := map[[4]string]int{}
	// reported becomes the violations that had their event: those of earlier audits that
	// still stand, and those sent now. Past the bound, the rest wait for a later audit.
	reported := map[string]bool{}
	res := AuditResult{Objects: len(objs)}
	for _, o := range objs {
		in := admission.Input{Operation: admission.AuditRun, Object: o.Object, NamespaceLabels: nsLabels[o.GetNamespace()]}
		if o.GetKind() == "Deployment" {
			in.ReleasedBy = released[o.GetNamespace()+"/"+o.GetName()]
		}
		for _, v := range a.Engine.Review(ctx, in).Violations {
			res.Violations++
			counts[[4]string{v.Policy, string(v.Mode), o.GetKind(), o.GetNamespace()}]++
			key := fmt.Sprintf("%s/%s/%s/%s", o.GetUID(), v.Policy, v.Field, v.Message)
			switch {
			case a.reported[key]:
				reported[key] = true
			case res.Events < maxEvents:
				a.Recorder.Eventf(o, nil, corev1.EventTypeWarning, "PolicyViolation", "Audit", "%s (mode %s)", truncate(v.String(), 900), v.Mode)
				res.Events++
				reported[key] = true
			}
		}
	}
	a.reported = reported
	policyAuditViolations.Reset()
	for k, n := range counts {
		policyAuditViolations.WithLabelValues(k[0], k[1], k[2], k[3]).Set(float64(n))
	}
	res.Took = time.Since(start)
	policyAuditSeconds.Set(res.Took.Seconds())
	policyAuditObjects.Set(float64(res.Objects))
	return res, nil
}

// namespaceLabels maps every namespace to its labels (policies select on them).
func (a *PolicyAuditor) namespaceLabels(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	var list corev1.NamespaceList
	for cont := ""; ; {
		if err := a.Reader.List(ctx, &list, client.Limit(auditPageSize), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing namespaces: %w", err)
		}
		for _, ns := range list.Items {
			out[ns.Name] = ns.Labels
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// list reads the audited objects, page by page. A kind whose API is not installed (no
// Gateway API) is skipped.
func (a *PolicyAuditor) list(ctx context.Context, nsLabels map[string]map[string]string) ([]*unstructured.Unstructured, error) {
	checked := labels.SelectorFromSet(labels.Set{admission.NamespaceLabel: admission.NamespaceLabelValue})
	var out []*unstructured.Unstructured
	for _, gvk := range auditedKinds {
		var namespaces []string
		switch {
		case gvk.Group != "mesh.sluice.dev":
			for ns, l := range nsLabels {
				if checked.Matches(labels.Set(l)) && (len(a.Namespaces) == 0 || slices.Contains(a.Namespaces, ns)) {
					namespaces = append(namespaces, ns)
				}
			}
		case len(a.Namespaces) > 0:
			namespaces = a.Namespaces
		default:
			namespaces = []string{""}
		}
		for _, ns := range namespaces {
			objs, err := a.listKind(ctx, gvk, ns)
			if meta.IsNoMatchError(err) {
				break
			}
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func (a *PolicyAuditor) listKind(ctx context.Context, gvk schema.GroupVersionKind, ns string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	for cont := ""; ; {
		if err := a.Reader.List(ctx, list, client.InNamespace(ns), client.Limit(auditPageSize), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			o := list.Items[i]
			o.SetGroupVersionKind(gvk)
			out = append(out, &o)
		}
		if cont = list.GetContinue(); cont == "" {
			return out, nil
		}
	}
}
