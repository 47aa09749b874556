package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
	"github.com/sluice-mesh/sluice/internal/policy/routes"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies,verbs=list;watch;update
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies/status,verbs=patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=httproutes.gateway.networking.k8s.io,verbs=get
// +kubebuilder:rbac:groups=networking.istio.io,resources=destinationrules;virtualservices,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=peerauthentications;authorizationpolicies,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=policy.linkerd.io,resources=servers;authorizationpolicies;meshtlsauthentications;networkauthentications;httplocalratelimitpolicies;httproutes,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=consul.hashicorp.com,resources=servicedefaults;serviceintentions;serviceresolvers;servicerouters,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups=traefik.io,resources=middlewares,verbs=get;create;patch;delete

// meshPolicyFinalizer lets the controller take a policy's settings out of objects it does not
// own (HTTPRoute rules, Service annotations) before the policy goes; owned objects would go
// with the garbage collector anyway, and are deleted here too so that no stale policy
// lingers while the collector catches up.
const meshPolicyFinalizer = "mesh.sluice.dev/meshpolicy"

// meshPolicyResync re-applies every policy this often, putting back drift in generated objects
// (they are not watched: their CRDs may come and go with the mesh).
const meshPolicyResync = 10 * time.Minute

// MeshPolicyReconciler translates MeshPolicies for the cluster's data plane and applies the
// result: gather (policy, conflicts, provider, targets) → translate → apply → patch status once.
type MeshPolicyReconciler struct {
	Client client.Client
	// APIReader reads Services the cache does not hold yet (see service).
	APIReader client.Reader
	Mapper    meta.RESTMapper
	Recorder  events.EventRecorder
	Options   MeshPolicyOptions

	retryMu      sync.Mutex
	retry        bool   // the HTTPRoute CRD has rules[].retry
	retryVersion string // of the HTTPRoute CRD retry was read from
}

// MeshPolicyOptions are facts about the cluster that discovery can't find.
type MeshPolicyOptions struct {
	// ConsulEnterprise: the cluster's Consul is Enterprise, which takes rate limits and
	// locality (Consul CE refuses a config entry carrying them).
	ConsulEnterprise bool
	// Workers is the number of concurrent reconciles (default 1).
	Workers int
}

// SetupMeshPolicyController registers the MeshPolicy controller.
func SetupMeshPolicyController(mgr ctrl.Manager, opts MeshPolicyOptions) error {
	disc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	r := &MeshPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Mapper: newServedKinds(mgr.GetRESTMapper(), disc), Recorder: mgr.GetEventRecorder("sluice-meshpolicy"), Options: opts}
	crds := &metav1.PartialObjectMetadata{}
	crds.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	b := ctrl.NewControllerManagedBy(mgr).Named("meshpolicy").
		For(&meshv1alpha1.MeshPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(opts.Workers, 1)}).
		// Another policy's arrival or departure decides conflicts; a target's change (selector,
		// ports) or a Rollout's (its slot Services) changes the translation.
		// Status writes change no generation: they must not wake every policy of the namespace.
		Watches(&meshv1alpha1.MeshPolicy{}, handler.EnqueueRequestsFromMapFunc(r.namespacePolicies), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.namespacePolicies)).
		Watches(&meshv1alpha1.Rollout{}, handler.EnqueueRequestsFromMapFunc(r.namespacePolicies), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A provider's CRD installed or removed while the manager runs (metadata only: CRDs
		// are large).
		WatchesMetadata(crds, r.providerCRDChanged(providerGroups()))
	// HTTPRoutes are watched when their API is installed at start: a route created later, or
	// regenerated by a Rollout, gets the policy's rule settings.
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}, "v1"); err == nil {
		b = b.Watches(&gatewayv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(r.namespacePolicies), builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(r)
}

// namespacePolicies enqueues every MeshPolicy of the object's namespace.
func (r *MeshPolicyReconciler) namespacePolicies(ctx context.Context, o client.Object) []reconcile.Request {
	list := &meshv1alpha1.MeshPolicyList{}
	if err := r.Client.List(ctx, list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// Reconcile brings the data plane's objects in line with the policy and reports in status.
func (r *MeshPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &meshv1alpha1.MeshPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, p)
	}
	if controllerutil.AddFinalizer(p, meshPolicyFinalizer) {
		if err := r.Client.Update(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := p.DeepCopy()
	o := r.reconcile(ctx, p)
	setPolicyConditions(p, o)
	p.Status.ObservedGeneration = p.Generation
	if !equality.Semantic.DeepEqual(before.Status, p.Status) {
		// Locked to the version read: a merge patch computed against a cached copy older than
		// the last status write would leave that write's fields (a gap since resolved) in place.
		if err := r.Client.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.emitTransition(before, p)
	if o.retry != nil {
		return ctrl.Result{}, o.retry
	}
	if o.reason == meshv1alpha1.ReasonTargetNotFound || o.recheck {
		return ctrl.Result{RequeueAfter: targetServiceRecheck}, nil
	}
	if o.reason == meshv1alpha1.ReasonProviderNotInstalled || o.reason == meshv1alpha1.ReasonNoProviderFound {
		// A policy created just after a mesh's CRDs came may have read discovery before it
		// served them, and their events woke only the policies that existed then.
		if s, ok := r.Mapper.(*servedKinds); ok && s.unsettled() {
			return ctrl.Result{RequeueAfter: notServedTTL + time.Second}, nil
		}
	}
	return ctrl.Result{RequeueAfter: meshPolicyResync}, nil
}

// outcome is what one reconcile found and did, for the conditions.
type outcome struct {
	// reason and message of a failure that stops the policy from being in force; "" when applied.
	reason, message string
	// stalled: only a change of the spec (or of the cluster's installed APIs) helps.
	stalled bool
	// conflict names the older policy this one yields to.
	conflict string
	// partial are fields expressed with a difference.
	partial []meshv1alpha1.UnsupportedField
	// summary of what was applied.
	summary string
	// retry is a transient error to return so the request is retried with backoff.
	retry error
	// recheck: look again soon, whatever the outcome (a named target port had no endpoint
	// to resolve it yet).
	recheck bool
}

func (r *MeshPolicyReconciler) reconcile(ctx context.Context, p *meshv1alpha1.MeshPolicy) outcome {
	st := &p.Status
	older, err := r.olderPolicy(ctx, p)
	if err != nil {
		return outcome{reason: "ListFailed", message: err.Error(), retry: err}
	}
	if older != nil {
		// Yield: take back whatever this policy had in force, so the older one alone governs.
		if err := r.release(ctx, p); err != nil {
			return outcome{reason: meshv1alpha1.ReasonApplyFailed, message: err.Error(), retry: err}
		}
		st.Resources, st.Unsupported = nil, nil
		msg := fmt.Sprintf("MeshPolicy %s, created earlier, already governs %s; this policy is not applied until that one goes or stops targeting it", older.Name, strings.Join(sharedTargets(p, older), ", "))
		return outcome{reason: meshv1alpha1.ConditionConflicted, message: msg, stalled: true, conflict: older.Name}
	}

	prov, err := providers.Resolve(r.Mapper, p.Spec.GetProvider())
	if err != nil {
		// Nothing is changed: what was applied stays in force until a provider is usable.
		switch {
		case errors.Is(err, providers.ErrNotInstalled):
			st.Provider = prov.Name()
			return outcome{reason: meshv1alpha1.ReasonProviderNotInstalled, message: err.Error(), stalled: true}
		case errors.Is(err, providers.ErrNoProvider):
			return outcome{reason: meshv1alpha1.ReasonNoProviderFound, message: err.Error(), stalled: true}
		default:
			return outcome{reason: "DiscoveryFailed", message: err.Error(), retry: err}
		}
	}
	st.Provider = prov.Name()

	services, missing, err := r.targets(ctx, p)
	if err != nil {
		return outcome{reason: "ReadFailed", message: err.Error(), retry: err}
	}
	if len(missing) > 0 {
		return outcome{reason: meshv1alpha1.ReasonTargetNotFound, message: fmt.Sprintf("Service %s not found in namespace %s; nothing was changed", strings.Join(missing, ", "), p.Namespace)}
	}
	caps := policy.Capabilities{ConsulEnterprise: r.Options.ConsulEnterprise}
	if n := prov.Name(); n == meshv1alpha1.ProviderGatewayAPI || n == meshv1alpha1.ProviderIstio { // the providers that write HTTPRoute retry
		if caps.HTTPRouteRetry, err = r.httpRouteRetry(ctx); err != nil {
			return outcome{reason: "DiscoveryFailed", message: err.Error(), retry: err}
		}
	}
	rollouts := &meshv1alpha1.RolloutList{}
	if err := r.Client.List(ctx, rollouts, client.InNamespace(p.Namespace)); err != nil {
		return outcome{reason: "ReadFailed", message: err.Error(), retry: err}
	}
	routed, err := routes.Routed(ctx, r.Client, p.Namespace, targetNames(p))
	if err != nil {
		return outcome{reason: "ReadFailed", message: err.Error(), retry: err}
	}
	slots := routes.SlotServices(targetNames(p), rollouts.Items)
	var ports map[string]map[string][]int32
	var unresolved bool
	if prov.Name() == meshv1alpha1.ProviderIstio { // the provider that takes pod ports by number only
		if ports, unresolved, err = r.namedTargetPorts(ctx, services); err != nil {
			return outcome{reason: "ReadFailed", message: err.Error(), retry: err}
		}
	}
	out, err := prov.Translate(policy.Input{Policy: p, Services: services, Capabilities: caps, Backends: slots, Routed: routed, TargetPorts: ports})
	if err != nil {
		return outcome{reason: "TranslationFailed", message: err.Error(), stalled: true}
	}
	unsupported, partial := policy.Check(prov.Matrix(), &p.Spec)
	st.Unsupported = policy.Merge(unsupported, out.Unsupported...)

	applied, carrying, err := r.apply(ctx, p, annotated(services, slots), out)
	if err != nil {
		// Keep track of what was written before the failure, for the next prune.
		st.Resources = unionRefs(st.Resources, applied)
	}
	if errors.Is(err, errNotOwned) {
		return outcome{reason: meshv1alpha1.ReasonObjectNotOwned, message: err.Error(), stalled: true}
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			// The provider's kind went away under the apply (its CRD was removed): ask
			// discovery again, and the retry finds the provider not installed.
			if s, ok := r.Mapper.(*servedKinds); ok {
				s.forget()
			}
		}
		return outcome{reason: meshv1alpha1.ReasonApplyFailed, message: err.Error(), retry: err}
	}
	st.Resources = applied
	summary := fmt.Sprintf("translated for %s: %d objects", prov.Name(), countOwned(applied))
	if len(carrying) > 0 {
		summary += fmt.Sprintf(", rule settings in HTTPRoute %s", strings.Join(carrying, ", "))
	}
	if len(st.Unsupported) > 0 {
		var fields []string
		for _, u := range st.Unsupported {
			fields = append(fields, fmt.Sprintf("%s (%s)", u.Field, u.Reason))
		}
		return outcome{reason: meshv1alpha1.ReasonUnsupportedFields, stalled: true, summary: summary, recheck: unresolved,
			message: fmt.Sprintf("%s cannot express %s; the rest is applied (%s)", prov.Name(), strings.Join(fields, "; "), summary)}
	}
	return outcome{partial: policy.Merge(partial), summary: summary, recheck: unresolved}
}

// olderPolicy is the oldest other policy of the namespace sharing a target with p and created
// before it (name breaks a tie), or nil.
func (r *MeshPolicyReconciler) olderPolicy(ctx context.Context, p *meshv1alpha1.MeshPolicy) (*meshv1alpha1.MeshPolicy, error) {
	list := &meshv1alpha1.MeshPolicyList{}
	if err := r.Client.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
		return nil, fmt.Errorf("listing MeshPolicies in %s: %w", p.Namespace, err)
	}
	var oldest *meshv1alpha1.MeshPolicy
	for i := range list.Items {
		q := &list.Items[i]
		if q.UID == p.UID || !q.DeletionTimestamp.IsZero() || len(sharedTargets(p, q)) == 0 || !olderThan(q, p) {
			continue
		}
		if oldest == nil || olderThan(q, oldest) {
			oldest = q
		}
	}
	return oldest, nil
}

func olderThan(a, b *meshv1alpha1.MeshPolicy) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.Name < b.Name
}

func sharedTargets(a, b *meshv1alpha1.MeshPolicy) []string {
	in := map[string]bool{}
	for _, t := range a.Spec.TargetRefs {
		in[t.Name] = true
	}
	var out []string
	for _, t := range b.Spec.TargetRefs {
		if in[t.Name] {
			out = append(out, "Service "+t.Name)
		}
	}
	sort.Strings(out)
	return out
}

// targets reads the target Services; missing lists those that don't exist.
func (r *MeshPolicyReconciler) targets(ctx context.Context, p *meshv1alpha1.MeshPolicy) ([]corev1.Service, []string, error) {
	var out []corev1.Service
	var missing []string
	for _, t := range p.Spec.TargetRefs {
		s, found, err := r.service(ctx, p.Namespace, t.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("reading Service %s/%s: %w", p.Namespace, t.Name, err)
		}
		if !found {
			missing = append(missing, t.Name)
			continue
		}
		out = append(out, workloadsOf(*s))
	}
	return out, missing, nil
}

// workloadsOf returns the Service as providers should see it. A Rollout's apex Service selects
// the stable slot only; the policy is for the service, so selector-based objects (Istio's
// PeerAuthentication and AuthorizationPolicy, Linkerd's Server) must select both slots' pods,
// or a canary would run without them.
func workloadsOf(s corev1.Service) corev1.Service {
	owner := metav1.GetControllerOf(&s)
	if owner == nil || owner.Kind != "Rollout" || owner.APIVersion != meshv1alpha1.GroupVersion.String() {
		return s
	}
	if _, ok := s.Spec.Selector[rollout.LabelSlot]; !ok {
		return s
	}
	sel := make(map[string]string, len(s.Spec.Selector))
	for k, v := range s.Spec.Selector {
		if k != rollout.LabelSlot {
			sel[k] = v
		}
	}
	s.Spec.Selector = sel
	return s
}

// httpRouteRetry reads whether the installed HTTPRoute CRD has rules[].retry (the Gateway API
// experimental channel). The CRD is large (its schema is hundreds of kilobytes), so it is read
// whole only when its resourceVersion changed.
func (r *MeshPolicyReconciler) httpRouteRetry(ctx context.Context) (bool, error) {
	key := client.ObjectKey{Name: "httproutes.gateway.networking.k8s.io"}
	crdGVK := schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	head := &metav1.PartialObjectMetadata{}
	head.SetGroupVersionKind(crdGVK)
	if err := r.Client.Get(ctx, key, head); err != nil {
		if client.IgnoreNotFound(err) == nil {
			return false, nil
		}
		return false, fmt.Errorf("reading the HTTPRoute CRD: %w", err)
	}
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	if r.retryVersion != "" && r.retryVersion == head.ResourceVersion {
		return r.retry, nil
	}
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(crdGVK)
	if err := r.Client.Get(ctx, key, crd); err != nil {
		return false, fmt.Errorf("reading the HTTPRoute CRD: %w", err)
	}
	retry := false
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		if vm["name"] != "v1" {
			continue
		}
		_, found, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", "spec", "properties", "rules", "items", "properties", "retry")
		retry = found
	}
	r.retry, r.retryVersion = retry, crd.GetResourceVersion()
	return retry, nil
}

// annotated are the Services that get a provider's Service annotations: the targets and, for
// a Rollout's apex Service, its slot Services, whose load balancers serve the released traffic
// (Linkerd reads failure accrual from the Service it balances).
func annotated(targets []corev1.Service, slots map[string][]string) []string {
	var out []string
	for i := range targets {
		out = append(out, targets[i].Name)
		out = append(out, slots[targets[i].Name]...)
	}
	return out
}

func targetNames(p *meshv1alpha1.MeshPolicy) []string {
	out := make([]string, 0, len(p.Spec.TargetRefs))
	for _, t := range p.Spec.TargetRefs {
		out = append(out, t.Name)
	}
	return out
}

func countOwned(refs []meshv1alpha1.ResourceReference) int {
	n := 0
	for _, r := range refs {
		if !isServiceRef(r) {
			n++
		}
	}
	return n
}

// emitTransition records an event when Ready changes status or reason.
func (r *MeshPolicyReconciler) emitTransition(before, after *meshv1alpha1.MeshPolicy) {
	prev := meta.FindStatusCondition(before.Status.Conditions, meshv1alpha1.ConditionReady)
	cur := meta.FindStatusCondition(after.Status.Conditions, meshv1alpha1.ConditionReady)
	if cur == nil || (prev != nil && prev.Status == cur.Status && prev.Reason == cur.Reason) {
		return
	}
	typ := corev1.EventTypeNormal
	if cur.Status != "True" {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(after, nil, typ, cur.Reason, "Reconcile", "%s", cur.Message)
}

// setPolicyConditions writes the conditions of the outcome (internal/policy, shared with the
// status fixtures that Argo CD, kstatus and Flux are tested on).
func setPolicyConditions(p *meshv1alpha1.MeshPolicy, o outcome) {
	policy.SetConditions(p, policy.Outcome{Reason: o.reason, Message: o.message, Stalled: o.stalled,
		Conflict: o.conflict, Partial: o.partial, Summary: o.summary}, time.Now())
}

// finalize takes the policy's settings out of what it does not own and deletes what it owns.
func (r *MeshPolicyReconciler) finalize(ctx context.Context, p *meshv1alpha1.MeshPolicy) error {
	if !controllerutil.ContainsFinalizer(p, meshPolicyFinalizer) {
		return nil
	}
	if err := r.release(ctx, p); err != nil {
		log.FromContext(ctx).Error(err, "releasing the policy's settings")
		return err
	}
	controllerutil.RemoveFinalizer(p, meshPolicyFinalizer)
	return client.IgnoreNotFound(r.Client.Update(ctx, p))
}
