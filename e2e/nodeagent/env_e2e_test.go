package nodeagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/stack"
)

const ns = "default"

// TestEnvFromConfigMapsAndSecrets runs the demo app (it answers with $VERSION) through the
// agent, with the environment taken from a Secret and a ConfigMap: a missing required
// ConfigMap keeps the pod waiting in CreateContainerConfigError until it is created; env wins
// over envFrom; a restart reads the ConfigMap again; missing optional objects are no obstacle.
func TestEnvFromConfigMapsAndSecrets(t *testing.T) {
	s := stack.StartForTest(t, stack.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := s.Client
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-secret", Namespace: ns},
		Data:       map[string][]byte{"VERSION": []byte("from-secret")},
	}
	if _, err := c.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fromSecret := demoPod("from-secret", nil)
	fromConfigMap := demoPod("from-configmap", []corev1.EnvVar{{Name: "VERSION", ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "demo-config"}, Key: "version"},
	}}})
	for _, p := range []*corev1.Pod{fromSecret, fromConfigMap} {
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	p := waitPod(t, ctx, c, "from-secret", "Ready", isReady)
	if v := version(t, p); v != "from-secret" {
		t.Errorf("pod from-secret: version %q, want from-secret (envFrom its Secret)", v)
	}
	waitPod(t, ctx, c, "from-configmap", "waiting for its ConfigMap", func(p *corev1.Pod) bool {
		w := waiting(p)
		return p.Status.Phase == corev1.PodPending && w != nil && w.Reason == "CreateContainerConfigError" &&
			w.Message == "couldn't find ConfigMap default/demo-config (env VERSION, key version)"
	})

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-config", Namespace: ns},
		Data:       map[string]string{"version": "from-configmap"},
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, ctx, c, "from-configmap", "Ready once its ConfigMap exists", isReady)
	if v := version(t, p); v != "from-configmap" {
		t.Errorf("pod from-configmap: version %q, want from-configmap (env wins over envFrom)", v)
	}

	cm.Data["version"] = "changed"
	if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	killProcess(t, s, ns+"/from-configmap")
	p = waitPod(t, ctx, c, "from-configmap", "restarted and Ready", func(p *corev1.Pod) bool {
		return isReady(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if v := version(t, p); v != "changed" {
		t.Errorf("pod from-configmap after a restart: version %q, want changed (read at each start)", v)
	}
}

// demoPod runs the demo app with envFrom the Secret demo-secret and a ConfigMap that never
// exists (optional), then env.
func demoPod(name string, env []corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "sluice.dev/demo-app:v1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			EnvFrom: []corev1.EnvFromSource{
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "demo-secret"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "never"}, Optional: ptr.To(true)}},
			},
			Env: env,
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
				PeriodSeconds: 1,
			},
		}}},
	}
}

// waitPod polls the pod until done accepts it, failing the test with its last state when ctx
// ends.
func waitPod(t *testing.T, ctx context.Context, c kubernetes.Interface, name, what string, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	last := ""
	for {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && done(p) {
			return p
		}
		last = fmt.Sprint(err)
		if p != nil && err == nil {
			last = fmt.Sprintf("phase %s, containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for pod %s %s; last state: %s", name, what, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func isReady(p *corev1.Pod) bool {
	return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready
}

func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	if len(p.Status.ContainerStatuses) != 1 {
		return nil
	}
	return p.Status.ContainerStatuses[0].State.Waiting
}

// version is the demo app's answer to GET / on the pod's address.
func version(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	url := stack.PodURL(p.Status.PodIP, 8080, "/")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, decoding: %v", url, resp.StatusCode, err)
	}
	return body.Version
}

// killProcess kills a pod's process, as a crash would: the agent restarts it.
func killProcess(t *testing.T, s *stack.Stack, pod string) {
	t.Helper()
	for _, c := range s.Agent.Containers() {
		if c.Pod == pod && c.PID != 0 {
			if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("killing pod %s (pid %d): %v", pod, c.PID, err)
			}
			return
		}
	}
	t.Fatalf("pod %s has no running process: %+v", pod, s.Agent.Containers())
}
