package stack_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/sluice-mesh/sluice/e2e/nodeagent"
	"github.com/sluice-mesh/sluice/e2e/stack"
)

// kube-apiserver is SIGKILLed while a pod warms up and started again: what etcd holds is still
// there, the certificates still work, the pod's Ready (decided while the API server was away)
// reaches the API once it is back, and the controllers and the node agent reconnect by
// themselves (a scale-up after the restart runs to Ready).
func TestAPIServerKilledAndRestarted(t *testing.T) {
	s := stack.StartForTest(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := s.Client
	kept := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: ns}, Data: map[string]string{"k": "v"}}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, kept, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := stack.DemoDeployment(ns, "v1", 1)
	d.Spec.Template.Spec.Containers[0].Args = []string{"--ready-delay=3s"}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the pod's process started", func() (bool, string) {
		return hasEvent(s, nodeagent.PodStarted), fmt.Sprint(s.Agent.PodEvents())
	}, func(ok bool) bool { return ok })

	if err := s.Kill(stack.APIServer); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "kept", metav1.GetOptions{}); err == nil {
		t.Fatal("the API server still answers after it was killed")
	}
	if err := s.Kill(stack.APIServer); err == nil {
		t.Error("killing a process that is not running: no error")
	}
	// The pod turns ready while nobody can be told.
	eventually(t, ctx, "the pod ready while the API server is away", func() (bool, string) {
		return hasEvent(s, nodeagent.PodReady), fmt.Sprint(s.Agent.PodEvents())
	}, func(ok bool) bool { return ok })
	if _, err := s.Restart(ctx, "etcd"); err == nil {
		t.Error("restarting etcd, which runs: no error")
	}
	restarted := time.Now()
	if _, err := s.Restart(ctx, stack.APIServer); err != nil {
		t.Fatal(err)
	}
	t.Logf("timing: API server ready %v after its restart", time.Since(restarted).Round(time.Millisecond))

	if cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "kept", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
		t.Fatalf("the ConfigMap written before the kill: %v %v", cm, err)
	}
	eventually(t, ctx, "the pod Ready in the API", func() ([]corev1.Pod, string) { return readyPods(ctx, c, "v1") },
		func(p []corev1.Pod) bool { return len(p) == 1 })
	// The Deployment controller writes the Deployment too: a conflict means read again.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := c.AppsV1().Deployments(ns).GetScale(ctx, "demo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 2
		_, err = c.AppsV1().Deployments(ns).UpdateScale(ctx, "demo", scale, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "a second pod Ready after the restart (controllers and agent reconnected)", func() ([]corev1.Pod, string) {
		return readyPods(ctx, c, "v1")
	}, func(p []corev1.Pod) bool { return len(p) == 2 })
}

func hasEvent(s *stack.Stack, kind nodeagent.PodEventKind) bool {
	for _, e := range s.Agent.PodEvents() {
		if e.Kind == kind {
			return true
		}
	}
	return false
}
