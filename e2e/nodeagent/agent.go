// Package nodeagent plays the kubelet of the e2e stack's single node, in-process, with
// client-go: it registers Node `local`, keeps its Lease and Ready heartbeat fresh, binds every
// Pending pod to itself (it is also the scheduler), and runs each pod's container as a plain
// process inside the stack's network namespace, on its own 10.244.0.x address.
//
// What it does like a kubelet: pod IPs on a real (non-loopback) address; readiness from real
// HTTP GET / TCP probes against the pod IP (failureThreshold, successThreshold, periodSeconds,
// initialDelaySeconds, timeoutSeconds); pod status with podIP(s), hostIP(s), startTime,
// containerStatuses, and the Initialized/ContainersReady/Ready conditions; restarts on exit
// following restartPolicy with exponential backoff (1 s doubling to 30 s, reset after 10 s of
// running) and restartCount/lastState; graceful stop (SIGTERM, SIGKILL after the pod's grace
// period, capped at 10 s) then a grace-0 delete with a UID precondition; the environment from
// env (value, fieldRef, configMapKeyRef, secretKeyRef) and envFrom (configMapRef, secretRef,
// prefix), with ConfigMaps and Secrets read at each start: a missing required object or key
// keeps the container waiting in CreateContainerConfigError, retried every second.
//
// What it does not do, on purpose:
//   - Images are not pulled: the image repository picks a local binary (Options.Images); the
//     tag is passed to it as IMAGE_TAG. An unknown image makes the pod Failed at once (like a
//     kubelet admission rejection), so a ReplicaSet replaces it again and again (about 10
//     pods a second here, never cleaned up); use bare pods to test that. A real kubelet keeps
//     such a pod Pending (ErrImagePull), which stalls the rollout instead.
//   - One container per pod; no init containers, no sidecars, no `command` (args only), no
//     volumes (ignored, not refused: the process sees the host's files; configMap, secret and
//     service-account volumes are not mounted), no $(VAR) expansion in env values, no
//     resource limits, no isolation other than the network namespace (all pods share it and
//     its port space, each binding its own address).
//   - Liveness and startup probes are ignored; exec and gRPC probes make the pod Failed.
//   - Scheduling ignores resources, affinity, taints and nodeSelector.
//   - Readiness is probed every 100 ms until the first success after each start (so pods turn
//     Ready within a few hundred milliseconds), then at periodSeconds like the kubelet.
package nodeagent

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/netns"
)

// HeartbeatInterval is how often the Lease and the Ready condition are renewed. The
// node-lifecycle controller marks the node (and every pod's Ready) Unknown about 50 s after
// the last renewal.
const HeartbeatInterval = 10 * time.Second

// Options configure the agent.
type Options struct {
	Client   kubernetes.Interface
	NS       *netns.Namespace // pods run and get their addresses here
	NodeName string           // default "local"
	NodeIP   string           // the node's InternalIP and every pod's hostIP
	PodCIDR  string           // e.g. 10.244.0.0/24
	// FirstIP and LastIP bound the pod addresses (default 10.244.0.10-10.244.0.250).
	FirstIP, LastIP string
	// Images maps an image repository without tag (sluice.dev/demo-app) to a binary.
	Images map[string]string
	// LogDir receives one log per pod: <namespace>_<pod>.log (restarts append).
	LogDir string
	// Env is the environment every container starts from (PATH, HOME).
	Env  []string
	Logf func(format string, args ...any)
}

// Agent is a running node agent.
type Agent struct {
	opts   Options
	client kubernetes.Interface
	ips    *ipam
	lister corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
	cancel context.CancelFunc
	wg     sync.WaitGroup
	node   *corev1.Node

	mu      sync.Mutex
	pods    map[string]*podRuntime // by namespace/name
	seen    map[types.UID]time.Time
	timings []PodTiming
	events  []PodEvent
	stopped bool
}

// PodTiming is how long one pod took to turn Ready the first time.
type PodTiming struct {
	Pod, IP string
	// SeenToReady runs from the pod's creation event reaching the agent (milliseconds after
	// the API server stored it; creationTimestamp only has whole seconds) to Ready written.
	SeenToReady time.Duration
	// StartToReady runs from the process start to the first successful probe.
	StartToReady time.Duration
}

// PodEvent is a moment in a pod's life as the agent saw it: a test lines up requests with it
// to tell which pod (by address) served them and whether that pod was ready or going away.
type PodEvent struct {
	Time time.Time
	Pod  string // namespace/name
	UID  types.UID
	IP   string
	Kind PodEventKind
}

// PodEventKind is what happened to a pod.
type PodEventKind string

// The events, in the order a pod goes through them.
const (
	PodStarted PodEventKind = "started" // its process started on IP
	// PodReady: the readiness probe passed and Ready=true is about to be written to the API
	// server (what EndpointSlices follow): no data plane can know of the pod as ready before.
	// PodUnready: the probe failed and Ready=false is about to be written.
	PodReady   PodEventKind = "ready"
	PodUnready PodEventKind = "unready"
	// PodTerminating: the pod is being deleted and the agent is stopping its process (SIGTERM,
	// SIGKILL after the grace period); PodStopped once it has exited and its address is gone.
	PodTerminating PodEventKind = "terminating"
	PodStopped     PodEventKind = "stopped"
	PodExited      PodEventKind = "exited" // the process exited by itself (a restart may follow)
)

// PodEvents returns what happened to pods so far, in order.
func (a *Agent) PodEvents() []PodEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]PodEvent(nil), a.events...)
}

func (a *Agent) event(rt *podRuntime, kind PodEventKind) {
	e := PodEvent{Time: time.Now(), Pod: rt.key, UID: rt.uid, IP: rt.ip, Kind: kind}
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

// Start registers the node and its lease, then handles pods until Stop.
func Start(ctx context.Context, opts Options) (*Agent, error) {
	if opts.NodeName == "" {
		opts.NodeName = "local"
	}
	if opts.FirstIP == "" {
		opts.FirstIP, opts.LastIP = "10.244.0.10", "10.244.0.250"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ips, err := newIPAM(opts.FirstIP, opts.LastIP)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		opts: opts, client: opts.Client, ips: ips,
		pods: map[string]*podRuntime{}, seen: map[types.UID]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	if err := a.registerNode(ctx); err != nil {
		return nil, fmt.Errorf("registering node %s: %w", opts.NodeName, err)
	}
	if err := a.renewLease(ctx, true); err != nil {
		return nil, fmt.Errorf("creating the lease of node %s: %w", opts.NodeName, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	factory := informers.NewSharedInformerFactory(a.client, 0)
	podInformer := factory.Core().V1().Pods()
	a.lister = podInformer.Lister()
	_, err = podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.enqueue(obj, true) },
		UpdateFunc: func(_, obj any) { a.enqueue(obj, false) },
		DeleteFunc: func(obj any) { a.enqueue(obj, false) },
	})
	if err != nil {
		cancel()
		return nil, err
	}
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, fmt.Errorf("pod informer did not sync: %w", ctx.Err())
	}
	for i := 0; i < 4; i++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for a.processNext(runCtx) {
			}
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer factory.Shutdown()
		a.heartbeat(runCtx)
	}()
	return a, nil
}

// Stop stops handling pods, then stops every pod process and removes its address. Pods stay in
// the API (the cluster is about to go away with the stack).
func (a *Agent) Stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	a.mu.Unlock()
	a.cancel()
	a.queue.ShutDown()
	a.wg.Wait()
	a.mu.Lock()
	pods := a.pods
	a.pods = map[string]*podRuntime{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, rt := range pods {
		wg.Add(1)
		go func() { defer wg.Done(); a.release(rt) }()
	}
	wg.Wait()
}

// Timings returns the time to Ready of every pod that turned Ready so far.
func (a *Agent) Timings() []PodTiming {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]PodTiming(nil), a.timings...)
}

// Container is a pod process the agent runs.
type Container struct {
	Pod, IP string
	PID     int // 0 while restarting
}

// Containers lists the pods the agent currently runs.
func (a *Agent) Containers() []Container {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Container
	for key, rt := range a.pods {
		if rt.failed {
			continue
		}
		out = append(out, Container{Pod: key, IP: rt.ip, PID: rt.pid()})
	}
	return out
}

func (a *Agent) enqueue(obj any, added bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if added {
		a.mu.Lock()
		if _, ok := a.seen[pod.UID]; !ok {
			a.seen[pod.UID] = time.Now()
		}
		a.mu.Unlock()
	}
	key, err := cache.MetaNamespaceKeyFunc(pod)
	if err == nil {
		a.queue.Add(key)
	}
}

func (a *Agent) processNext(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	if err := a.reconcile(ctx, key); err != nil {
		if ctx.Err() == nil {
			a.opts.Logf("nodeagent: pod %s: %v (retrying)", key, err)
		}
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	return true
}

func (a *Agent) registerNode(ctx context.Context) error {
	version := "v0.0.0"
	if v, err := a.client.Discovery().ServerVersion(); err == nil {
		version = v.GitVersion
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.opts.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": a.opts.NodeName,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     runtime.GOARCH,
		}},
		Spec: corev1.NodeSpec{PodCIDR: a.opts.PodCIDR, PodCIDRs: []string{a.opts.PodCIDR}},
	}
	created, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = a.client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	// Status is a subresource: set it with its own call, as the kubelet does.
	res := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("16Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Capacity: res, Allocatable: res,
		Phase: corev1.NodeRunning,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.opts.NodeIP},
			{Type: corev1.NodeHostName, Address: a.opts.NodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: version, OperatingSystem: "linux", Architecture: runtime.GOARCH,
			ContainerRuntimeVersion: "sluice-e2e://process",
		},
		Conditions: []corev1.NodeCondition{
			nodeCondition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "sluice e2e node agent is posting ready status", now),
			nodeCondition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "", now),
			nodeCondition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "", now),
			nodeCondition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "", now),
		},
	}
	a.node, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func nodeCondition(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string, now metav1.Time) corev1.NodeCondition {
	return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
}

// heartbeat renews the Lease and the Ready condition's heartbeat until ctx ends.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.renewLease(ctx, false); err != nil && ctx.Err() == nil {
			a.opts.Logf("nodeagent: renewing lease: %v", err)
		}
		if err := a.touchReady(ctx); err != nil && ctx.Err() == nil {
			a.opts.Logf("nodeagent: node heartbeat: %v", err)
		}
	}
}

func (a *Agent) touchReady(ctx context.Context) error {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	for i := range node.Status.Conditions {
		c := &node.Status.Conditions[i]
		c.LastHeartbeatTime = now
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			*c = nodeCondition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "sluice e2e node agent is posting ready status", now)
		}
	}
	_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// renewLease creates or renews kube-node-lease/<node>. At start the API server may not have
// created kube-node-lease yet (its system-namespaces controller runs after /readyz), so the
// first call retries briefly.
func (a *Agent) renewLease(ctx context.Context, first bool) error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	deadline := time.Now().Add(15 * time.Second)
	for {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, a.opts.NodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{
					Name: a.opts.NodeName, Namespace: corev1.NamespaceNodeLease,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.node.Name, UID: a.node.UID}},
				},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: ptr.To(a.opts.NodeName), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now,
				},
			}, metav1.CreateOptions{})
		case err == nil:
			lease.Spec.RenewTime = &now
			_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		}
		if err == nil || !first || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
