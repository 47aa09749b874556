package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// requestCounter counts a manager's API requests by kind: reads (GET, LIST), watches, writes.
type requestCounter struct {
	mu                     sync.Mutex
	reads, writes, watches int
	writeLog               []string
}

func (c *requestCounter) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		switch {
		case req.URL.Query().Get("watch") == "true":
			c.watches++
		case req.Method == http.MethodGet:
			c.reads++
		default:
			c.writes++
			c.writeLog = append(c.writeLog, req.Method+" "+req.URL.Path)
		}
		c.mu.Unlock()
		return next.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// snapshot returns the counts so far and resets them.
func (c *requestCounter) snapshot() (reads, writes int, log []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reads, writes, log = c.reads, c.writes, c.writeLog
	c.reads, c.writes, c.watches, c.writeLog = 0, 0, 0, nil
	return reads, writes, log
}

// settle waits until the manager has sent no write for a whole half second (the last writes
// of a start or a transition), 15 s at most.
func (c *requestCounter) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.snapshot()
		observe(500 * time.Millisecond)
		if _, w, _ := c.snapshot(); w == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the manager never stopped writing")
		}
	}
}

// observe lets the manager run for d: a window in which requests are counted, not a wait for
// some state.
func observe(d time.Duration) { time.Sleep(d) }

// countingManager runs a Rollout manager for ns whose every API request is counted.
func countingManager(t testing.TB, ns string, g *stubGates) *requestCounter {
	t.Helper()
	counter := &requestCounter{}
	cfg := managerConfig(t)
	cfg.Wrap(counter.RoundTrip)
	mgr := newRolloutManagerWith(t, managerSetup{config: cfg}, func(ctrl.Manager) controllers.GateChecker { return g }, ns)
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() { _ = stop() })
	return counter
}

// touch changes something of the Rollout that is not its spec (a label), which wakes its
// reconcile without asking for anything new.
func touch(t testing.TB, ns, name string, n int) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"labels":{"touched":"%d"}}}`, n)))
	if err := env.Client.Patch(context.Background(), &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, patch); err != nil {
		t.Fatal(err)
	}
}

// 6. Quiet when idle, bounded when waiting: a steady Rollout makes no writes, even when woken;
// a misconfiguration only a person can fix is Stalled and waits for a change instead of
// retrying in a loop.
func TestQuietWhenIdleBoundedWhenWaiting(t *testing.T) {
	t.Run("a steady Rollout writes nothing, woken or not", func(t *testing.T) {
		c := newCluster(t, "idle")
		counter := countingManager(t, c.ns, &stubGates{})
		c.target(t, "checkout")
		create(t, canaryRollout(c.ns, "checkout"))
		c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
		counter.settle(t)
		for i := range 5 {
			touch(t, c.ns, "checkout", i)
			observe(300 * time.Millisecond) // spread the wake-ups
		}
		observe(2 * time.Second)
		reads, writes, log := counter.snapshot()
		t.Logf("idle Rollout woken 5 times in about 3.5 s: %d reads, %d writes", reads, writes)
		if writes != 0 {
			t.Errorf("a steady Rollout wrote %d times: %s", writes, strings.Join(log, "; "))
		}
		if reads == 0 {
			t.Error("no reads at all: the Rollout was never reconciled, so the test proves nothing")
		}
	})

	t.Run("a named target port the pods lack: Stalled, no retry loop", func(t *testing.T) {
		c := newCluster(t, "badport")
		counter := countingManager(t, c.ns, &stubGates{})
		c.target(t, "checkout")
		ro := canaryRollout(c.ns, "checkout")
		ro.Spec.Service.TargetPort = ptr.To(intstr.FromString("metrics"))
		create(t, ro)
		r := c.waitRollout(t, "checkout", "Stalled", func(r *meshv1alpha1.Rollout) bool {
			return condIs(r, meshv1alpha1.ConditionStalled, "TargetMisconfigured")
		})
		if !strings.Contains(stalledMessage(r), `"metrics"`) {
			t.Errorf("Stalled does not name the port: %s", stalledMessage(r))
		}
		quiet(t, counter)
	})

	t.Run("a Service someone else owns: Stalled, no retry loop", func(t *testing.T) {
		c := newCluster(t, "foreign")
		counter := countingManager(t, c.ns, &stubGates{})
		c.target(t, "checkout")
		foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: c.ns}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "checkout"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		create(t, foreign)
		create(t, canaryRollout(c.ns, "checkout"))
		r := c.waitRollout(t, "checkout", "Stalled", func(r *meshv1alpha1.Rollout) bool { return condIs(r, meshv1alpha1.ConditionStalled, "ApplyFailed") })
		if !strings.Contains(stalledMessage(r), "Service checkout") {
			t.Errorf("Stalled does not name the Service: %s", stalledMessage(r))
		}
		quiet(t, counter)
		// The person removes the conflicting Service: the Rollout carries on by itself.
		if err := env.Client.Delete(context.Background(), foreign); err != nil {
			t.Fatal(err)
		}
		c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	})
}

func stalledMessage(r *meshv1alpha1.Rollout) string {
	for _, c := range r.Status.Conditions {
		if c.Type == meshv1alpha1.ConditionStalled {
			return c.Message
		}
	}
	return ""
}

// quiet asserts that a stalled Rollout does not retry: over 3 s its manager sends next to no
// requests (a retry loop with backoff would send dozens).
func quiet(t *testing.T, counter *requestCounter) {
	t.Helper()
	counter.settle(t)
	observe(3 * time.Second)
	reads, writes, log := counter.snapshot()
	t.Logf("stalled for 3 s: %d reads, %d writes", reads, writes)
	if reads+writes > 4 {
		t.Errorf("a stalled Rollout keeps working: %d reads, %d writes in 3 s (%s)", reads, writes, strings.Join(log, "; "))
	}
}

// BenchmarkIdleRolloutAPIRequests measures what steady Rollouts cost the API server: requests
// per idle Rollout per minute with nothing happening, and per wake-up (a change that asks for
// nothing new, like a label edit or a resync). Writes must be 0 in both.
//
//	go test ./controllers/ -run '^$' -bench IdleRolloutAPIRequests -benchtime 20x
func BenchmarkIdleRolloutAPIRequests(b *testing.B) {
	const n = 10
	c := newCluster(b, "idlebench")
	counter := countingManager(b, c.ns, &stubGates{})
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("svc%d", i)
		c.target(b, names[i])
		create(b, canaryRollout(c.ns, names[i]))
	}
	for _, name := range names {
		c.healthyOn(b, name, meshv1alpha1.SlotA)
	}
	counter.settle(b)
	const window = 10 * time.Second
	observe(window)
	idleReads, idleWrites, _ := counter.snapshot()
	perMinute := float64(time.Minute) / float64(window) / n

	wakes := 0
	for i := 0; b.Loop(); i++ {
		for _, name := range names {
			touch(b, c.ns, name, i)
		}
		wakes += n
		observe(200 * time.Millisecond)
	}
	observe(time.Second)
	reads, writes, log := counter.snapshot()
	b.ReportMetric(float64(idleReads)*perMinute, "idle-reads/rollout/min")
	b.ReportMetric(float64(idleWrites)*perMinute, "idle-writes/rollout/min")
	b.ReportMetric(float64(reads)/float64(wakes), "reads/wake")
	b.ReportMetric(float64(writes)/float64(wakes), "writes/wake")
	if idleWrites+writes != 0 {
		b.Errorf("steady Rollouts wrote: %s", strings.Join(log, "; "))
	}
}

// A slot Deployment's name taken by a Deployment Sluice did not make: the Rollout is Stalled
// naming it, and the Deployment is never written (not force-applied, not scaled, not
// labelled): ownership is checked before any apply.
func TestForeignSlotDeploymentIsNeverTakenOver(t *testing.T) {
	c := newCluster(t, "foreignslot")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	slot := ro.GetSlotDeploymentName(meshv1alpha1.SlotA)
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: slot, Namespace: c.ns, Labels: map[string]string{"team": "other"}}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(int32(1)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "other", Image: "other:v1"}}},
		},
	}}
	create(t, foreign)
	create(t, ro)
	r := c.waitRollout(t, "checkout", "Stalled", func(r *meshv1alpha1.Rollout) bool { return condIs(r, meshv1alpha1.ConditionStalled, "ApplyFailed") })
	if msg := stalledMessage(r); !strings.Contains(msg, "Deployment "+slot) || !strings.Contains(msg, "not this Rollout's") {
		t.Errorf("Stalled does not name the Deployment: %s", msg)
	}
	observe(2 * time.Second)
	got := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(foreign), got); err != nil {
		t.Fatal(err)
	}
	// The test's stand-in kubelet writes its status; nothing else may change.
	if !equality.Semantic.DeepEqual(got.Spec, foreign.Spec) || !maps.Equal(got.Labels, foreign.Labels) || !maps.Equal(got.Annotations, foreign.Annotations) {
		t.Errorf("the foreign Deployment was changed: labels %v, annotations %v, replicas %d, image %s", got.Labels, got.Annotations, *got.Spec.Replicas, got.Spec.Template.Spec.Containers[0].Image)
	}
	for _, m := range got.GetManagedFields() {
		if m.Manager == traffic.FieldManager {
			t.Errorf("Sluice manages fields of the foreign Deployment: %s %s", m.Operation, m.Subresource)
		}
	}
}
