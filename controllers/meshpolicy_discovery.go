package controllers

import (
	"context"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
)

// servedKinds answers which kinds the cluster serves, for choosing a MeshPolicy's provider,
// from discovery kept at most servedKindsTTL (and dropped when a provider's CRD comes or goes).
// The manager's own REST mapper never forgets a kind: with it, a mesh CRD removed while the
// manager runs would stay "installed", and every apply of that provider would fail with 404
// forever. Everything but RESTMapping goes to the manager's mapper.
type servedKinds struct {
	meta.RESTMapper
	discovery discovery.DiscoveryInterface
	now       func() time.Time

	mu    sync.Mutex
	lists map[schema.GroupVersion]servedList
	// changed is when a provider's CRD last came or went: discovery lags its events, and a
	// group's CRDs come and go one by one, so what is read just after may be half of it.
	changed time.Time
}

type servedList struct {
	at     time.Time
	kinds  map[string]meta.RESTScopeName // kind → scope; empty when the group version is not served
	plural map[string]string             // kind → resource
}

// servedKindsTTL bounds how long a kind removed without an event (a missed watch) still looks
// served; notServedTTL how long a group version looked up while its CRD was still being
// established (discovery serves it a moment after the CRD's events) still looks missing, and
// how long anything read within that time after a CRD change is kept.
const (
	servedKindsTTL = time.Minute
	notServedTTL   = 5 * time.Second
)

func newServedKinds(mapper meta.RESTMapper, d discovery.DiscoveryInterface) *servedKinds {
	return &servedKinds{RESTMapper: mapper, discovery: d, now: time.Now}
}

// RESTMapping maps a kind the cluster serves now (within the TTL); a kind it does not serve is
// a NoKindMatchError, as from any mapper.
func (s *servedKinds) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if len(versions) == 0 {
		return s.RESTMapper.RESTMapping(gk)
	}
	for _, v := range versions {
		gv := schema.GroupVersion{Group: gk.Group, Version: v}
		l, err := s.list(gv)
		if err != nil {
			return nil, err
		}
		if scope, ok := l.kinds[gk.Kind]; ok {
			sc := meta.RESTScopeRoot
			if scope == meta.RESTScopeNameNamespace {
				sc = meta.RESTScopeNamespace
			}
			return &meta.RESTMapping{Resource: gv.WithResource(l.plural[gk.Kind]), GroupVersionKind: gv.WithKind(gk.Kind), Scope: sc}, nil
		}
	}
	return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
}

func (s *servedKinds) list(gv schema.GroupVersion) (servedList, error) {
	s.mu.Lock()
	l, ok := s.lists[gv]
	changed := s.changed
	s.mu.Unlock()
	ttl := servedKindsTTL
	if len(l.kinds) == 0 || l.at.Sub(changed) < notServedTTL {
		ttl = notServedTTL
	}
	if ok && s.now().Sub(l.at) < ttl {
		return l, nil
	}
	l = servedList{at: s.now(), kinds: map[string]meta.RESTScopeName{}, plural: map[string]string{}}
	res, err := s.discovery.ServerResourcesForGroupVersion(gv.String())
	switch {
	case apierrors.IsNotFound(err):
		// Not served: an empty list.
	case err != nil:
		return l, err
	default:
		for _, r := range res.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // a subresource
			}
			scope := meta.RESTScopeNameRoot
			if r.Namespaced {
				scope = meta.RESTScopeNameNamespace
			}
			l.kinds[r.Kind], l.plural[r.Kind] = scope, r.Name
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lists == nil {
		s.lists = map[schema.GroupVersion]servedList{}
	}
	s.lists[gv] = l
	return l, nil
}

// unsettled: a provider's CRD came or went within the last half minute, so a kind looked up
// since may have been read before discovery served it (the wake-ups of the CRD's events reach
// only the policies that existed then).
func (s *servedKinds) unsettled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.changed.IsZero() && s.now().Sub(s.changed) < 30*time.Second
}

// forget drops what discovery said: the next RESTMapping asks again.
func (s *servedKinds) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists = nil
	s.changed = s.now()
}

// providerGroups are the API groups of the kinds the MeshPolicy providers write.
func providerGroups() map[string]bool {
	groups := map[string]bool{}
	for _, p := range providers.All() {
		for _, k := range p.Kinds() {
			groups[k.Group] = true
		}
	}
	return groups
}

// providerCRDChanged wakes every MeshPolicy when a CRD of a provider's group comes, changes
// (its status too: Established) or goes: provider auto may choose differently now, and a named
// provider may be installed or gone. Each is woken again once notServedTTL has passed, for a
// CRD that discovery did not serve yet when the first wake-up looked.
func (r *MeshPolicyReconciler) providerCRDChanged(groups map[string]bool) handler.TypedEventHandler[client.Object, reconcile.Request] {
	wake := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		_, group, _ := strings.Cut(o.GetName(), ".") // <plural>.<group>
		if !groups[group] {
			return
		}
		if s, ok := r.Mapper.(*servedKinds); ok {
			s.forget()
		}
		list := &meshv1alpha1.MeshPolicyList{}
		if err := r.Client.List(ctx, list); err != nil {
			return
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		for _, req := range reqs {
			q.Add(req)
		}
		// Not q.AddAfter: the priority queue merges a delayed add into the item already
		// waiting to run now, and the second look would never happen.
		time.AfterFunc(notServedTTL+time.Second, func() {
			for _, req := range reqs {
				q.Add(req)
			}
		})
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			wake(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			wake(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			wake(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			wake(ctx, e.Object, q)
		},
	}
}
