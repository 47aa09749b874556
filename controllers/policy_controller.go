package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/sluice-mesh/sluice/internal/admission"
)

// The policy ConfigMaps are read in the operator's namespace only: a Role there, not a ClusterRole.
// +kubebuilder:rbac:groups="",namespace=system,resources=configmaps,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

const (
	// PolicyLabel marks the ConfigMaps of the manager's namespace that hold policies
	// (value rego: every key ending in .rego is one policy) or the configuration (value config).
	PolicyLabel       = "mesh.sluice.dev/policy"
	PolicyLabelRego   = "rego"
	PolicyLabelConfig = "config"
)

var (
	policiesInForce = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_admission_policies", Help: "1 for each policy in force, by mode.",
	}, []string{"policy", "mode"})
	policyLoadErrors = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_admission_policy_load_errors", Help: "1 for each policy (or the configuration) that does not load; a policy's last good text stays in force.",
	}, []string{"policy", "origin"})
	policyReloadSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sluice_admission_policy_reload_seconds", Help: "Time to compile the changed policies and put the new set in force.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2},
	})
)

func init() {
	metrics.Registry.MustRegister(policiesInForce, policyLoadErrors, policyReloadSeconds)
}

// PolicyCacheOptions restricts the ConfigMap cache to the labelled ConfigMaps of the policy
// namespace: nobody else's ConfigMaps are held in memory.
func PolicyCacheOptions(namespace string) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{namespace: {}}, Label: policySelector()},
	}
}

// policySelector selects the policy ConfigMaps.
func policySelector() labels.Selector {
	req, _ := labels.NewRequirement(PolicyLabel, selection.In, []string{PolicyLabelRego, PolicyLabelConfig})
	return labels.NewSelector().Add(*req)
}

// PolicyLoader is the engine side of a reload.
type PolicyLoader interface {
	Load(ctx context.Context, sources []admission.Source, cfg admission.Config) admission.Loaded
}

// PolicyReconciler puts the policies of the labelled ConfigMaps (plus the built-in library)
// in force whenever one changes. It runs on every replica: each serves the webhook.
type PolicyReconciler struct {
	Client    client.Client
	Recorder  events.EventRecorder
	Engine    PolicyLoader
	Namespace string
	Library   []admission.Source
	// Loaded is called after each load (the audit runs after a policy change).
	Loaded func()

	loaded atomic.Bool
	mu     sync.Mutex
	config admission.Config
	// failing is the error last reported per policy or configuration, so that events
	// are sent on transitions only.
	failing map[string]failure
}

// failure is a load error as reported.
type failure struct{ msg, origin string }

// SetupPolicyController registers the policy reloader.
func SetupPolicyController(mgr ctrl.Manager, r *PolicyReconciler) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("sluice-admission")
	}
	if r.failing == nil {
		r.failing = map[string]failure{}
	}
	all := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: r.Namespace, Name: "policies"}}
	return ctrl.NewControllerManagedBy(mgr).Named("admissionpolicy").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1, NeedLeaderElection: ptr.To(false)}).
		// Any change reloads the whole set: compiling only what changed is the engine's job.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetNamespace() != r.Namespace {
				return nil
			}
			return []reconcile.Request{all}
		})).
		// The first load happens even when there is no ConfigMap at all.
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			q.Add(all)
			return nil
		})).
		Complete(r)
}

// Ready fails until the first load: the webhook must not answer with the library alone
// while the platform team's policies are still being read.
func (r *PolicyReconciler) Ready(_ *http.Request) error {
	if !r.loaded.Load() {
		return errors.New("admission policies not loaded yet")
	}
	return nil
}

// Reconcile reads the labelled ConfigMaps and loads them.
func (r *PolicyReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var list corev1.ConfigMapList
	if err := r.Client.List(ctx, &list, client.InNamespace(r.Namespace), client.HasLabels{PolicyLabel}); err != nil {
		return ctrl.Result{}, err
	}
	slices.SortFunc(list.Items, func(a, b corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	sources := slices.Clone(r.Library)
	var configs []*corev1.ConfigMap
	for i := range list.Items {
		cm := &list.Items[i]
		switch cm.Labels[PolicyLabel] {
		case PolicyLabelConfig:
			configs = append(configs, cm)
		case PolicyLabelRego:
			for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
				if !strings.HasSuffix(key, ".rego") {
					continue
				}
				sources = append(sources, admission.Source{
					Name:   cm.Name + "/" + strings.TrimSuffix(key, ".rego"),
					Origin: fmt.Sprintf("ConfigMap %s/%s, key %s", cm.Namespace, cm.Name, key),
					File:   cm.Name + "/" + key,
					Module: cm.Data[key],
				})
			}
		}
	}
	r.readConfig(ctx, configs)

	loaded := r.Engine.Load(ctx, sources, r.config)
	policyReloadSeconds.Observe(loaded.Took.Seconds())
	policiesInForce.Reset()
	for name, mode := range loaded.Policies {
		policiesInForce.WithLabelValues(name, string(mode)).Set(1)
	}
	byName := map[string]*corev1.ConfigMap{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	now := map[string]string{}
	for _, e := range loaded.Errors {
		now[e.Source.Name] = e.Error()
	}
	present := map[string]bool{configName: true}
	for _, s := range sources {
		cmName, _, _ := strings.Cut(s.Name, "/")
		r.report(ctx, s.Name, s.Origin, now[s.Name], byName[cmName])
		present[s.Name] = true
	}
	// A failing policy whose ConfigMap or key is gone fails no more.
	for name, f := range r.failing {
		if !present[name] {
			policyLoadErrors.DeleteLabelValues(name, f.origin)
			delete(r.failing, name)
		}
	}
	r.loaded.Store(true)
	ctrl.LoggerFrom(ctx).V(1).Info("admission policies loaded", "policies", len(loaded.Policies), "errors", len(loaded.Errors), "took", loaded.Took)
	if r.Loaded != nil {
		r.Loaded()
	}
	return ctrl.Result{}, nil
}

// readConfig parses the configuration; a broken or ambiguous one keeps the last good one.
func (r *PolicyReconciler) readConfig(ctx context.Context, cms []*corev1.ConfigMap) {
	var err error
	var cfg admission.Config
	switch len(cms) {
	case 0:
	case 1:
		cfg, err = admission.ParseConfig(cms[0].Data[admission.ConfigKey])
	default:
		names := make([]string, len(cms))
		for i, cm := range cms {
			names[i] = cm.Name
		}
		err = fmt.Errorf("%d ConfigMaps are labelled %s=%s (%s): keep one", len(cms), PolicyLabel, PolicyLabelConfig, strings.Join(names, ", "))
	}
	var on *corev1.ConfigMap
	if len(cms) > 0 {
		on = cms[0]
	}
	msg := ""
	if err != nil {
		msg = "the admission configuration does not load, the previous one stays in force: " + err.Error()
	} else {
		r.config = cfg
	}
	r.report(ctx, configName, "configuration", msg, on)
}

// configName stands for the configuration in load-error reports.
const configName = "(configuration)"

// report logs, counts and sends an event when a policy starts or stops failing to load.
func (r *PolicyReconciler) report(ctx context.Context, name, origin, msg string, cm *corev1.ConfigMap) {
	prev := r.failing[name].msg
	if msg == "" {
		policyLoadErrors.DeleteLabelValues(name, origin)
		delete(r.failing, name)
		if prev != "" && cm != nil {
			r.Recorder.Eventf(cm, nil, corev1.EventTypeNormal, "PolicyLoaded", "Load", "%s loads again and is in force", name)
		}
		return
	}
	policyLoadErrors.WithLabelValues(name, origin).Set(1)
	if msg == prev {
		return
	}
	r.failing[name] = failure{msg, origin}
	ctrl.LoggerFrom(ctx).Error(errors.New(msg), "admission policy does not load", "policy", name, "origin", origin)
	if cm != nil {
		r.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, "PolicyLoadFailed", "Load", "%s", truncate(msg, 1000))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
