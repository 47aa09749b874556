package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
}

// Until its issue lands, the MeshPolicy controller must say in status that they do nothing, never
// report success: Ready=False and Stalled=True with reason NotImplemented, observedGeneration
// current, and one Warning event (events on transitions only).
func TestControllersReportNotImplemented(t *testing.T) {
	cases := []struct {
		sample  string
		kind    string
		patch   string // a spec change, which bumps the generation
		obj     conditioned
		message string
		gen     func(conditioned) int64
	}{
		{"meshpolicy_payments", "MeshPolicy", `{"spec":{"locality":{"preferClose":false}}}`, &meshv1alpha1.MeshPolicy{}, controllers.MeshPolicyMessage, func(o conditioned) int64 { return o.(*meshv1alpha1.MeshPolicy).Status.ObservedGeneration }},
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pending-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.sample, func(t *testing.T) {
			obj := tc.obj
			loadSample(t, tc.sample, obj)
			obj.SetNamespace(ns.Name)
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
			key := client.ObjectKeyFromObject(obj)
			poll(t, func() (bool, error) {
				if err := env.Client.Get(ctx, key, obj); err != nil {
					return false, err
				}
				ready := meta.FindStatusCondition(obj.GetConditions(), meshv1alpha1.ConditionReady)
				stalled := meta.FindStatusCondition(obj.GetConditions(), meshv1alpha1.ConditionStalled)
				return ready != nil && stalled != nil && tc.gen(obj) == obj.GetGeneration(), nil
			})
			ready := meta.FindStatusCondition(obj.GetConditions(), meshv1alpha1.ConditionReady)
			stalled := meta.FindStatusCondition(obj.GetConditions(), meshv1alpha1.ConditionStalled)
			if ready.Status != metav1.ConditionFalse || ready.Reason != meshv1alpha1.ReasonNotImplemented || ready.Message != tc.message {
				t.Errorf("Ready = %+v, want False/NotImplemented", ready)
			}
			if stalled.Status != metav1.ConditionTrue || stalled.Reason != meshv1alpha1.ReasonNotImplemented {
				t.Errorf("Stalled = %+v, want True/NotImplemented", stalled)
			}

			// A spec change bumps the generation: observedGeneration follows, and no second
			// event is emitted because Ready did not transition.
			patch := client.RawPatch("application/merge-patch+json", []byte(tc.patch))
			if err := env.Client.Patch(ctx, obj, patch); err != nil {
				t.Fatal(err)
			}
			wantGen := obj.GetGeneration()
			if wantGen < 2 {
				t.Fatalf("generation %d after a spec change", wantGen)
			}
			poll(t, func() (bool, error) {
				err := env.Client.Get(ctx, key, obj)
				return tc.gen(obj) == wantGen, err
			})
			events := func() ([]eventsv1.Event, error) {
				var list eventsv1.EventList
				err := env.Client.List(ctx, &list, client.InNamespace(ns.Name))
				var out []eventsv1.Event
				for _, e := range list.Items {
					if e.Regarding.Name == obj.GetName() && e.Regarding.Kind == tc.kind {
						out = append(out, e)
					}
				}
				return out, err
			}
			poll(t, func() (bool, error) {
				evs, err := events()
				return len(evs) > 0, err
			})
			evs, _ := events()
			if len(evs) != 1 || evs[0].Type != corev1.EventTypeWarning || evs[0].Reason != meshv1alpha1.ReasonNotImplemented {
				t.Errorf("events = %+v, want one Warning NotImplemented", evs)
			}
		})
	}
}

func loadSample(t *testing.T, name string, into client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "mesh_v1alpha1_"+name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", name, err))
	}
}

// poll checks cond every 50ms until it holds or 20s pass.
func poll(t *testing.T, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		ok, err := cond()
		if err != nil {
			t.Logf("poll: %v", err)
		}
		return ok, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
