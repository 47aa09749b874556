package nodeagent

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// reconcile moves one pod along: bind it, start it, or tear it down.
func (a *Agent) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := a.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Gone from the API without passing through deletionTimestamp here (force delete, or
		// the namespace went away): still stop the process and free the address.
		a.forget(key, "")
		return nil
	}
	if err != nil {
		return err
	}
	if pod.Spec.NodeName == "" {
		return a.bind(ctx, pod)
	}
	if pod.Spec.NodeName != a.opts.NodeName {
		return nil
	}
	// A new pod under the name of an old one (StatefulSets, tests): the old one is over.
	a.forget(key, pod.UID)
	if pod.DeletionTimestamp != nil {
		return a.terminate(ctx, key, pod)
	}
	a.mu.Lock()
	_, running := a.pods[key]
	a.mu.Unlock()
	if running || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	return a.admit(ctx, key, pod)
}

// bind assigns a Pending pod to this node through pods/binding, as a scheduler does.
func (a *Agent) bind(ctx context.Context, pod *corev1.Pod) error {
	err := a.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.opts.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // deleted meanwhile, or bound already: the next event tells
	}
	return err
}

// admit checks that the agent can run the pod, gives it an address and starts its container.
func (a *Agent) admit(ctx context.Context, key string, pod *corev1.Pod) error {
	spec, reason, msg := a.containerSpec(pod)
	if reason != "" {
		a.mu.Lock()
		a.pods[key] = &podRuntime{a: a, key: key, uid: pod.UID, failed: true, done: closedChan()}
		a.mu.Unlock()
		a.opts.Logf("nodeagent: pod %s failed: %s", key, msg)
		return a.writeFailed(ctx, pod, reason, msg)
	}
	ip, err := a.ips.allocate()
	if err != nil {
		return err
	}
	if err := a.opts.NS.AddAddr(ip+"/32", "lo"); err != nil {
		a.ips.release(ip)
		return err
	}
	rtCtx, cancel := context.WithCancel(context.Background())
	rt := &podRuntime{
		a: a, key: key, uid: pod.UID, pod: pod.DeepCopy(), ip: ip, spec: spec,
		cancel: cancel, done: make(chan struct{}), st: runState{phase: corev1.PodPending},
		logPath: filepath.Join(a.opts.LogDir, pod.Namespace+"_"+pod.Name+".log"),
	}
	a.mu.Lock()
	rt.seen = a.seen[pod.UID]
	a.pods[key] = rt
	a.mu.Unlock()
	go rt.supervise(rtCtx)
	return nil
}

// terminate stops the container, frees its address and removes the pod for good: the kubelet's
// part of graceful deletion. The UID precondition keeps a same-named successor safe.
func (a *Agent) terminate(ctx context.Context, key string, pod *corev1.Pod) error {
	a.forget(key, "")
	err := a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// forget stops and drops the runtime under key unless it belongs to keepUID.
func (a *Agent) forget(key string, keepUID types.UID) {
	a.mu.Lock()
	rt, ok := a.pods[key]
	if !ok || (keepUID != "" && rt.uid == keepUID) {
		a.mu.Unlock()
		return
	}
	delete(a.pods, key)
	delete(a.seen, rt.uid)
	a.mu.Unlock()
	a.release(rt)
}

// release stops a runtime's process and removes its address.
func (a *Agent) release(rt *podRuntime) {
	if rt.failed {
		return
	}
	a.event(rt, PodTerminating)
	rt.cancel()
	<-rt.done
	a.event(rt, PodStopped)
	if err := a.opts.NS.DelAddr(rt.ip+"/32", "lo"); err != nil {
		a.opts.Logf("nodeagent: removing %s of pod %s: %v", rt.ip, rt.key, err)
	}
	a.ips.release(rt.ip)
}

// containerSpec turns the pod's single container into a command line and environment, or
// says why the agent can't run it (reason, message for the pod's status).
func (a *Agent) containerSpec(pod *corev1.Pod) (spec containerSpec, reason, msg string) {
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) > 0 {
		return spec, "Unsupported", fmt.Sprintf("the e2e node agent runs exactly one container per pod and no init containers (pod has %d containers, %d init containers)", len(pod.Spec.Containers), len(pod.Spec.InitContainers))
	}
	c := pod.Spec.Containers[0]
	repo, tag := splitImage(c.Image)
	bin, ok := a.opts.Images[repo]
	if !ok {
		known := make([]string, 0, len(a.opts.Images))
		for k := range a.opts.Images {
			known = append(known, k)
		}
		sort.Strings(known)
		return spec, "UnknownImage", fmt.Sprintf("image %q is not known to the e2e node agent (it runs local binaries, not images); known image repositories: %s", c.Image, strings.Join(known, ", "))
	}
	if len(c.Command) > 0 {
		return spec, "Unsupported", fmt.Sprintf("container %s sets command; the e2e node agent runs the image's binary and supports args only", c.Name)
	}
	if p := c.ReadinessProbe; p != nil && p.HTTPGet == nil && p.TCPSocket == nil {
		return spec, "Unsupported", fmt.Sprintf("container %s: only httpGet and tcpSocket readiness probes are supported", c.Name)
	}
	port := ""
	if len(c.Ports) > 0 {
		port = strconv.Itoa(int(c.Ports[0].ContainerPort))
	}
	// The agent's variables; the container's own come after them at each start, and the last
	// duplicate wins, so a pod can override them as it could override anything in a real image.
	env := append([]string(nil), a.opts.Env...)
	env = append(env,
		"POD_NAME="+pod.Name, "POD_NAMESPACE="+pod.Namespace, "NODE_NAME="+a.opts.NodeName,
		"PORT="+port, "IMAGE="+c.Image, "IMAGE_TAG="+tag)
	// Resolved at each start (ConfigMaps and Secrets are read then): only checked here.
	for _, e := range c.Env {
		if why := unsupportedEnv(e); why != "" {
			return spec, "Unsupported", fmt.Sprintf("container %s env %s: %s", c.Name, e.Name, why)
		}
	}
	// Volumes and volumeMounts, configMap and secret ones included, are ignored rather than
	// refused: the process reads the host's files, and configuration comes through env.
	spec.argv = append([]string{bin}, c.Args...)
	spec.env = env
	spec.container = c
	return spec, "", ""
}

// splitImage splits "host:5000/repo:tag" into repository and tag ("" when none); digests are
// dropped.
func splitImage(image string) (repo, tag string) {
	image, _, _ = strings.Cut(image, "@")
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		return image[:colon], image[colon+1:]
	}
	return image, ""
}

// writeFailed marks a pod the agent refuses to run as Failed, with a message that says why.
func (a *Agent) writeFailed(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	return a.updateStatus(ctx, pod.Namespace, pod.Name, pod.UID, func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase, st.Reason, st.Message = corev1.PodFailed, reason, msg
		st.HostIP = a.opts.NodeIP
		st.HostIPs = []corev1.HostIP{{IP: a.opts.NodeIP}}
		if st.StartTime == nil {
			st.StartTime = &now
		}
		setPodCondition(st, corev1.PodReady, corev1.ConditionFalse, reason, now)
		setPodCondition(st, corev1.ContainersReady, corev1.ConditionFalse, reason, now)
		st.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
			})
		}
	})
}

// updateStatus applies mutate to the pod's current status and writes it, retrying conflicts
// (the API server and controllers touch pods too). A pod that is gone or replaced is fine.
func (a *Agent) updateStatus(ctx context.Context, ns, name string, uid types.UID, mutate func(*corev1.PodStatus)) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := a.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != uid {
			return nil
		}
		mutate(&pod.Status)
		_, err = a.client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) || ctx.Err() != nil {
		return nil
	}
	return err
}

// setPodCondition sets a condition, keeping lastTransitionTime when the status is unchanged.
func setPodCondition(st *corev1.PodStatus, t corev1.PodConditionType, s corev1.ConditionStatus, reason string, now metav1.Time) {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != s {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason = s, reason
		return
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: now})
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// recordReady keeps a pod's first time to Ready.
func (a *Agent) recordReady(rt *podRuntime, started time.Time) {
	now := time.Now()
	t := PodTiming{Pod: rt.key, IP: rt.ip, StartToReady: now.Sub(started)}
	if !rt.seen.IsZero() {
		t.SeenToReady = now.Sub(rt.seen)
	}
	a.mu.Lock()
	a.timings = append(a.timings, t)
	a.mu.Unlock()
	a.opts.Logf("nodeagent: pod %s Ready on %s, %v after creation (%v after its process started)",
		rt.key, rt.ip, t.SeenToReady.Round(time.Millisecond), t.StartToReady.Round(time.Millisecond))
}
