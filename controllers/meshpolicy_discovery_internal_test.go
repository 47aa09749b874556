package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// A group's CRDs are removed one by one and discovery lags the events: what is read just after
// a change (here: half the group) is asked again once the short TTL has passed, not kept for
// the served TTL. Found by TestMeshPolicyProviderCRDRemovedAtRunTime under load: provider auto
// kept choosing a half-removed Istio for a minute.
func TestServedKindsReadAfterAChangeIsShortLived(t *testing.T) {
	gv := schema.GroupVersion{Group: "networking.istio.io", Version: "v1"}
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}
	half := []*metav1.APIResourceList{{GroupVersion: gv.String(), APIResources: []metav1.APIResource{{Name: "destinationrules", Kind: "DestinationRule", Namespaced: true}}}}
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	s := newServedKinds(nil, disc)
	s.now = func() time.Time { return now }

	disc.Resources = half
	s.forget() // a CRD of the group was deleted
	if _, err := s.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "DestinationRule"}, gv.Version); err != nil {
		t.Fatalf("DestinationRule while still served: %v", err)
	}
	disc.Resources = nil // the last CRD is gone; its event was the one already handled

	now = now.Add(notServedTTL + time.Second) // the policy's delayed wake-up
	if _, err := s.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "DestinationRule"}, gv.Version); err == nil {
		t.Fatal("DestinationRule still looks served after the short TTL: the read right after the change was kept")
	}

	// Away from any change, a served list is kept for the served TTL.
	disc.Resources = half
	now = now.Add(time.Hour)
	if _, err := s.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "DestinationRule"}, gv.Version); err != nil {
		t.Fatal(err)
	}
	disc.Resources = nil
	now = now.Add(notServedTTL + time.Second)
	if _, err := s.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "DestinationRule"}, gv.Version); err != nil {
		t.Errorf("a served list read away from a change was dropped before its TTL: %v", err)
	}
}

// A provider CRD's event wakes every policy now and again after notServedTTL, on the queue the
// controllers really use (the priority queue merges a delayed add into a waiting item: the
// second look was lost, and a policy read with discovery lagging stayed Stalled).
func TestProviderCRDChangeWakesPoliciesTwice(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	p := &meshv1alpha1.MeshPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "mtls"}}
	r := &MeshPolicyReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(p).Build()}
	q := priorityqueue.New[reconcile.Request]("wake-test")
	defer q.ShutDown()
	crd := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "destinationrules.networking.istio.io"}}
	r.providerCRDChanged(map[string]bool{"networking.istio.io": true}).Create(context.Background(), event.CreateEvent{Object: crd}, q)

	want := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(p)}
	for i, when := range []string{"at once", "after notServedTTL"} {
		got := make(chan reconcile.Request, 1)
		go func() {
			item, _ := q.Get()
			got <- item
		}()
		select {
		case item := <-got:
			if item != want {
				t.Fatalf("wake %d: %v, want %v", i, item, want)
			}
			q.Done(item)
		case <-time.After(notServedTTL + 5*time.Second):
			t.Fatalf("the policy was not woken %s", when)
		}
	}
}
