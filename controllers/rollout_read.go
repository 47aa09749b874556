package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// readRollout reads the Rollout a reconcile decides on. A decision must never be made on a
// copy older than one this manager has already read or written: a stale status replays an
// old step (after a rollback, weight goes back to the canary), and when the replayed decision
// changes nothing in status no optimistic lock catches it before the route is applied. So the
// cache's copy is used only when it is exactly the version this manager last saw (its own last
// write, usually: the cache then holds everything the manager knows); any other version, newer
// or older (resourceVersions can't be ordered), and any Rollout this process has not seen yet
// (a restart, a new leader) is read from the API server. At scale that saves one GET per
// reconcile of a release.
func (r *RolloutReconciler) readRollout(ctx context.Context, key types.NamespacedName, ro *meshv1alpha1.Rollout) error {
	if rv, ok := r.seen.get(key); ok {
		if err := r.Client.Get(ctx, key, ro); err == nil && ro.ResourceVersion == rv {
			return nil
		}
		*ro = meshv1alpha1.Rollout{}
	}
	return r.APIReader.Get(ctx, key, ro)
}

// seenVersions remembers the resourceVersion of each Rollout as this manager last read or
// wrote it (see readRollout).
type seenVersions struct {
	mu sync.Mutex
	rv map[types.NamespacedName]string
}

func (s *seenVersions) get(key types.NamespacedName) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rv, ok := s.rv[key]
	return rv, ok
}

// set records rv; an empty rv forgets the Rollout.
func (s *seenVersions) set(key types.NamespacedName, rv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rv == "" {
		delete(s.rv, key)
		return
	}
	if s.rv == nil {
		s.rv = map[types.NamespacedName]string{}
	}
	s.rv[key] = rv
}
