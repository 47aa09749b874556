package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/netns"
	"github.com/sluice-mesh/sluice/e2e/stack"
)

const ns = "default"

// TestDeploymentRolloutAndScaleDown runs a Deployment of the demo app through the real
// controllers: pods Ready on 10.244.0.x, EndpointSlice ready, answering HTTP from the test
// process, an image-tag rollout, a scale to zero, one more process, and a clean teardown.
func TestDeploymentRolloutAndScaleDown(t *testing.T) {
	begin := time.Now()
	s := stack.StartForTest(t, stack.Options{})
	t.Logf("timing: stack up in %v (namespace %v, API server ready %v)", time.Since(begin).Round(time.Millisecond),
		s.Timings["network"].Round(time.Millisecond), s.Timings["apiserver"].Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sc := &scenario{t: t, ctx: ctx, s: s, c: s.Client}

	v1IPs := sc.deployV1()
	pids := agentPIDs(s)
	sc.rolloutV2(v1IPs)
	pids = append(pids, agentPIDs(s)...)
	sc.scaleToZero(pids)
	sc.runExtraProcess()
	sc.stopAndCheckNothingLeft()
}

type scenario struct {
	t   *testing.T
	ctx context.Context
	s   *stack.Stack
	c   kubernetes.Interface
}

// deployV1 creates the Deployment and Service and returns the pod IPs once all is ready.
func (sc *scenario) deployV1() []string {
	t, ctx, c := sc.t, sc.ctx, sc.c
	created := time.Now()
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, stack.DemoDeployment(ns, "v1", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Services(ns).Create(ctx, demoService(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var firstReady time.Duration
	pods := eventually(t, ctx, "3 ready v1 pods", func() ([]corev1.Pod, string) {
		pods, msg := readyPods(ctx, c, "v1")
		if len(pods) > 0 && firstReady == 0 {
			firstReady = time.Since(created)
		}
		return pods, msg
	}, func(p []corev1.Pod) bool { return len(p) == 3 })
	t.Logf("timing: first pod Ready %v after the Deployment was created, all 3 after %v", firstReady.Round(time.Millisecond), time.Since(created).Round(time.Millisecond))
	for _, pt := range sc.s.Agent.Timings() {
		t.Logf("timing: pod %s (%s) Ready %v after the agent saw it, %v after its process started", pt.Pod, pt.IP, pt.SeenToReady.Round(time.Millisecond), pt.StartToReady.Round(time.Millisecond))
	}
	ips := podIPs(t, pods)
	for _, p := range pods {
		if p.Status.HostIP != stack.HostIP || p.Status.StartTime == nil || p.Spec.NodeName != "local" {
			t.Errorf("pod %s: hostIP %q, startTime %v, node %q", p.Name, p.Status.HostIP, p.Status.StartTime, p.Spec.NodeName)
		}
	}
	eventually(t, ctx, "Deployment available", func() (*appsv1.Deployment, string) {
		return deployment(ctx, c)
	}, func(d *appsv1.Deployment) bool { return d != nil && d.Status.AvailableReplicas == 3 })
	eventually(t, ctx, "EndpointSlice with the v1 pod IPs ready", func() ([]string, string) {
		return readyEndpoints(ctx, c)
	}, func(got []string) bool { return slices.Equal(got, ips) })

	version, pod := get(t, stack.PodURL(ips[0], 8080, "/"))
	if version != "v1" || !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == pod && p.Status.PodIP == ips[0] }) {
		t.Errorf("GET %s: version %q from pod %q; want v1 from the pod with that IP", ips[0], version, pod)
	}
	return ips
}

// rolloutV2 changes the image tag (the demo app's version) and waits for the rollout.
func (sc *scenario) rolloutV2(v1IPs []string) {
	t, ctx, c := sc.t, sc.ctx, sc.c
	rollout := time.Now()
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"sluice.dev/demo-app:v2"}]}}}}`
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "demo", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "rollout to v2 complete", func() (*appsv1.Deployment, string) {
		return deployment(ctx, c)
	}, rolledOut)
	pods := eventually(t, ctx, "only v2 pods left", func() ([]corev1.Pod, string) {
		return allPods(ctx, c)
	}, func(p []corev1.Pod) bool {
		return len(p) == 3 && !slices.ContainsFunc(p, func(p corev1.Pod) bool { return !strings.HasSuffix(p.Spec.Containers[0].Image, ":v2") })
	})
	t.Logf("timing: rollout v1 -> v2 complete in %v", time.Since(rollout).Round(time.Millisecond))
	v2IPs := podIPs(t, pods)
	for _, ip := range v2IPs {
		if slices.Contains(v1IPs, ip) {
			t.Errorf("v2 pod got %s, an address a v1 pod had (allocation must be round-robin)", ip)
		}
		if version, _ := get(t, stack.PodURL(ip, 8080, "/")); version != "v2" {
			t.Errorf("GET %s: version %q, want v2", ip, version)
		}
	}
	eventually(t, ctx, "EndpointSlice with the v2 pod IPs ready", func() ([]string, string) {
		return readyEndpoints(ctx, c)
	}, func(ips []string) bool { return slices.Equal(ips, v2IPs) })
}

// scaleToZero scales the Deployment to 0 and checks processes and addresses are gone.
func (sc *scenario) scaleToZero(podPIDs []int) {
	t, ctx, c, s := sc.t, sc.ctx, sc.c, sc.s
	scaled := time.Now()
	// The Deployment controller writes the Deployment too (status after the rollout): a
	// conflict is expected now and then, and means read again.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		scale, err := c.AppsV1().Deployments(ns).GetScale(ctx, "demo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 0
		_, err = c.AppsV1().Deployments(ns).UpdateScale(ctx, "demo", scale, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "no pods, no pod processes, no pod addresses", func() (bool, string) {
		pods, _ := allPods(ctx, c)
		addrs, err := s.NS.Addrs("lo")
		if err != nil {
			return false, err.Error()
		}
		n := len(s.Agent.Containers())
		state := fmt.Sprintf("pods %d, agent containers %d, addresses on lo %v", len(pods), n, addrs)
		return len(pods) == 0 && n == 0 && slices.Equal(addrs, []string{"127.0.0.1", stack.HostIP}), state
	}, func(done bool) bool { return done })
	t.Logf("timing: scale 3 -> 0 done in %v", time.Since(scaled).Round(time.Millisecond))
	for _, pid := range podPIDs {
		if netns.Alive(pid) {
			t.Errorf("pod process %d still runs", pid)
		}
	}
}

// runExtraProcess starts one more process the way Traefik or Prometheus will be started:
// bound to HostIP, reachable from the test process, logged, stopped by Stop.
func (sc *scenario) runExtraProcess() {
	t, s := sc.t, sc.s
	extra, err := s.Run("extra", []string{s.DemoApp, "--listen=" + stack.HostIP + ":9000", "--version=extra"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, sc.ctx, "the extra process answering", func() (string, string) {
		resp, err := http.Get("http://" + stack.HostIP + ":9000/")
		if err != nil {
			return "", err.Error()
		}
		_ = resp.Body.Close()
		return resp.Header.Get("X-Version"), resp.Status
	}, func(v string) bool { return v == "extra" })
	if !extra.Running() {
		t.Errorf("extra process not running")
	}
}

// stopAndCheckNothingLeft stops the stack: no namespace, route or process may remain.
func (sc *scenario) stopAndCheckNothingLeft() {
	t, s := sc.t, sc.s
	var stackPIDs []int
	for _, p := range s.Processes() {
		stackPIDs = append(stackPIDs, p.PID())
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if netns.Exists(s.Name) {
		t.Errorf("network namespace %s still exists", s.Name)
	}
	if out, _ := exec.Command("ip", "-4", "route", "show", "10.244.0.0/16").CombinedOutput(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("root route left behind: %s", out)
	}
	for _, pid := range stackPIDs {
		if netns.Alive(pid) {
			t.Errorf("stack process %d still runs", pid)
		}
	}
}

// TestBrokenPodsAreReported checks the agent's failure paths: an image it can't run makes the
// pod Failed with a clear message; a crashing container is restarted and counted.
func TestBrokenPodsAreReported(t *testing.T) {
	s := stack.StartForTest(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := s.Client
	unknown := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "unknown-image", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
	// --error-rate=2 is refused by the demo app: it exits 1 at once, every time.
	crashing := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crashing", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sluice.dev/demo-app:v1", Args: []string{"--error-rate=2"}}}},
	}
	for _, p := range []*corev1.Pod{unknown, crashing} {
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	failed := eventually(t, ctx, "unknown-image pod Failed", func() (*corev1.Pod, string) {
		return getPod(ctx, c, "unknown-image")
	}, func(p *corev1.Pod) bool { return p != nil && p.Status.Phase == corev1.PodFailed })
	if failed.Status.Reason != "UnknownImage" || !strings.Contains(failed.Status.Message, `"nginx:1.27" is not known`) {
		t.Errorf("unknown-image pod: reason %q, message %q", failed.Status.Reason, failed.Status.Message)
	}
	eventually(t, ctx, "crashing pod restarted", func() (*corev1.Pod, string) {
		return getPod(ctx, c, "crashing")
	}, func(p *corev1.Pod) bool {
		if p == nil || len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount >= 1 && !cs.Ready && cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 1
	})
}

// eventually polls get until done accepts its result, failing the test with the last state
// when ctx ends. Never a fixed sleep: the poll interval only bounds how late we notice.
func eventually[T any](t *testing.T, ctx context.Context, what string, get func() (T, string), done func(T) bool) T {
	t.Helper()
	last := ""
	for {
		v, state := get()
		if done(v) {
			return v
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last state: %s", what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func demoService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "demo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

func allPods(ctx context.Context, c kubernetes.Interface) ([]corev1.Pod, string) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil {
		return nil, err.Error()
	}
	var states []string
	for _, p := range list.Items {
		states = append(states, fmt.Sprintf("%s %s %s ready=%v deleting=%v", p.Name, p.Spec.Containers[0].Image, p.Status.PodIP, isReady(p), p.DeletionTimestamp != nil))
	}
	return list.Items, strings.Join(states, "; ")
}

// readyPods are the ready, not terminating pods running the given tag.
func readyPods(ctx context.Context, c kubernetes.Interface, tag string) ([]corev1.Pod, string) {
	all, state := allPods(ctx, c)
	var ready []corev1.Pod
	for _, p := range all {
		if isReady(p) && p.DeletionTimestamp == nil && strings.HasSuffix(p.Spec.Containers[0].Image, ":"+tag) {
			ready = append(ready, p)
		}
	}
	return ready, state
}

func isReady(p corev1.Pod) bool {
	return slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
	})
}

func getPod(ctx context.Context, c kubernetes.Interface, name string) (*corev1.Pod, string) {
	p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err.Error()
	}
	return p, fmt.Sprintf("phase %s, reason %q, containers %+v", p.Status.Phase, p.Status.Reason, p.Status.ContainerStatuses)
}

func deployment(ctx context.Context, c kubernetes.Interface) (*appsv1.Deployment, string) {
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		return nil, err.Error()
	}
	return d, fmt.Sprintf("generation %d, status %+v", d.Generation, d.Status)
}

// rolledOut is `kubectl rollout status`'s test: every replica updated, available, no old ones.
func rolledOut(d *appsv1.Deployment) bool {
	if d == nil {
		return false
	}
	st, want := d.Status, *d.Spec.Replicas
	return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want
}

// readyEndpoints are the sorted addresses of ready endpoints in the demo Service's slices,
// checking the port is the named container port.
func readyEndpoints(ctx context.Context, c kubernetes.Interface) ([]string, string) {
	list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=demo"})
	if err != nil {
		return nil, err.Error()
	}
	var ips []string
	for _, es := range list.Items {
		if len(es.Ports) != 1 || ptr.Deref(es.Ports[0].Name, "") != "http" || ptr.Deref(es.Ports[0].Port, 0) != 8080 {
			return nil, fmt.Sprintf("slice %s has ports %+v", es.Name, es.Ports)
		}
		for _, ep := range es.Endpoints {
			if ptr.Deref(ep.Conditions.Ready, false) {
				ips = append(ips, ep.Addresses...)
			}
		}
	}
	sort.Strings(ips)
	return ips, fmt.Sprintf("%d slices, ready addresses %v", len(list.Items), ips)
}

// podIPs returns the pods' sorted IPs, checking they are distinct 10.244.0.x addresses.
func podIPs(t *testing.T, pods []corev1.Pod) []string {
	t.Helper()
	cidr := netip.MustParsePrefix(stack.PodCIDR)
	var ips []string
	for _, p := range pods {
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !cidr.Contains(ip) || len(p.Status.PodIPs) != 1 {
			t.Fatalf("pod %s: podIP %q, podIPs %v; want one address in %s", p.Name, p.Status.PodIP, p.Status.PodIPs, stack.PodCIDR)
		}
		ips = append(ips, ip.String())
	}
	sort.Strings(ips)
	if len(slices.Compact(slices.Clone(ips))) != len(ips) {
		t.Fatalf("pod IPs not distinct: %v", ips)
	}
	return ips
}

func agentPIDs(s *stack.Stack) []int {
	var pids []int
	for _, c := range s.Agent.Containers() {
		if c.PID != 0 {
			pids = append(pids, c.PID)
		}
	}
	return pids
}

// get fetches a demo app URL from the test process (plain TCP through the veth route) and
// returns the reported version and pod, checking the header agrees with the body.
func get(t *testing.T, url string) (version, pod string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct{ Version, Pod string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: status %d, decoding: %v", url, resp.StatusCode, err)
	}
	if h := resp.Header.Get("X-Version"); h != body.Version {
		t.Errorf("GET %s: X-Version %q but body version %q", url, h, body.Version)
	}
	return body.Version, body.Pod
}
