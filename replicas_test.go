package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// replica is one manager process of a two-replica install.
type replica struct {
	name                 string
	webhook, probe, metr string
	cmd                  *exec.Cmd
	logs                 *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTwoReplicasOneLeadsBothServeWebhooks runs the install's two replicas (config/manager):
// both answer admission reviews, one leads the controllers, and when it stops the other takes
// over and acts.
func TestTwoReplicasOneLeadsBothServeWebhooks(t *testing.T) {
	env, err := testenv.Start(testenv.Options{WebhookPaths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	const leaseNS = "sluice-system"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}}); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wo := env.WebhookInstallOptions
	bin := managerBinary(t)
	start := func(name, webhookAddr string) *replica {
		host, port, _ := net.SplitHostPort(webhookAddr)
		r := &replica{name: name, webhook: webhookAddr, probe: freeAddr(t), metr: freeAddr(t), logs: &syncBuffer{}}
		r.cmd = exec.Command(bin,
			"--kubeconfig="+kubeconfig, "--leader-elect", "--leader-election-namespace="+leaseNS,
			"--health-probe-bind-address="+r.probe, "--metrics-bind-address="+r.metr, "--metrics-secure=false",
			"--webhook-host="+host, "--webhook-port="+port, "--webhook-cert-dir="+wo.LocalServingCertDir,
		)
		r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = r.cmd.Process.Signal(os.Interrupt)
			_ = r.cmd.Wait()
			if t.Failed() {
				t.Logf("%s logs:\n%s", r.name, r.logs.String())
			}
		})
		return r
	}
	// The first replica listens where the API server sends reviews; the second elsewhere, as a
	// second pod behind the webhook Service would.
	one := start("replica 1", net.JoinHostPort(wo.LocalServingHost, fmt.Sprint(wo.LocalServingPort)))
	two := start("replica 2", freeAddr(t))
	plain := &http.Client{Timeout: 2 * time.Second}
	for _, r := range []*replica{one, two} {
		pollStatus(t, plain, "http://"+r.probe+"/readyz", "", http.StatusOK)
	}

	// Both answer reviews, leader or not.
	for _, r := range []*replica{one, two} {
		checkReplicaWebhooks(t, r)
	}

	// One leads.
	var leader, follower *replica
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		a, b := leads(one), leads(two)
		switch {
		case a && b:
			return false, fmt.Errorf("both replicas lead")
		case a:
			leader, follower = one, two
		case b:
			leader, follower = two, one
		}
		return leader != nil, nil
	}); err != nil {
		t.Fatalf("no single leader: %v", err)
	}
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: leaseNS, Name: "sluice.mesh.sluice.dev"}, lease); err != nil {
		t.Fatalf("the leader election Lease: %v", err)
	}
	holder := ptrString(lease.Spec.HolderIdentity)

	// The leader stops (a drain): the other replica takes over within the lease's duration and
	// its controllers act on a Rollout made after that.
	stopped := time.Now()
	_ = leader.cmd.Process.Signal(os.Interrupt)
	_ = leader.cmd.Wait()
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return leads(follower), nil
	}); err != nil {
		t.Fatalf("%s did not take over after %s stopped: %v", follower.name, leader.name, err)
	}
	took := time.Since(stopped)
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: leaseNS, Name: "sluice.mesh.sluice.dev"}, lease); err != nil {
		t.Fatal(err)
	}
	if now := ptrString(lease.Spec.HolderIdentity); now == holder || now == "" {
		t.Errorf("Lease holder %q after the leader stopped, was %q", now, holder)
	}
	t.Logf("%s took over %s after %s stopped", follower.name, took.Round(10*time.Millisecond), leader.name)

	if follower == one {
		checkReplicaWebhooks(t, one) // still serving after taking the lead
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "replicas-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ro := sampleRollout(t)
	ro.Namespace = ns.Name
	if follower == two {
		// The webhook Service now has only replica 2's endpoint: point the reviews there.
		repoint(t, env, one.webhook, two.webhook)
	}
	// The API server picks up a changed webhook configuration within a moment.
	var createErr error
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		createErr = env.Client.Create(ctx, ro.DeepCopy())
		return createErr == nil, nil
	}); err != nil {
		t.Fatalf("creating a Rollout with one replica left: %v", createErr)
	}
	waitTargetNotFound(t, env, ro, "the new leader's Rollout controller did not act")
}

// repoint sends the API server's reviews to another replica's address, as the webhook Service
// does once one of its two pods is gone.
func repoint(t *testing.T, env *testenv.Env, from, to string) {
	t.Helper()
	ctx := context.Background()
	swap := func(c *admissionregistrationv1.WebhookClientConfig) {
		if c.URL != nil {
			u := strings.Replace(*c.URL, "//"+from+"/", "//"+to+"/", 1)
			c.URL = &u
		}
	}
	var mutating admissionregistrationv1.MutatingWebhookConfigurationList
	if err := env.Client.List(ctx, &mutating); err != nil {
		t.Fatal(err)
	}
	for i := range mutating.Items {
		for j := range mutating.Items[i].Webhooks {
			swap(&mutating.Items[i].Webhooks[j].ClientConfig)
		}
		if err := env.Client.Update(ctx, &mutating.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	var validating admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := env.Client.List(ctx, &validating); err != nil {
		t.Fatal(err)
	}
	for i := range validating.Items {
		for j := range validating.Items[i].Webhooks {
			swap(&validating.Items[i].Webhooks[j].ClientConfig)
		}
		if err := env.Client.Update(ctx, &validating.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
}

// leads reads the replica's leader election metric.
func leads(r *replica) bool {
	resp, err := http.Get("http://" + r.metr + "/metrics") //nolint:noctx // test, local
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	return strings.Contains(body.String(), `leader_election_master_status{name="sluice.mesh.sluice.dev"} 1`)
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sampleRollout(t *testing.T) *meshv1alpha1.Rollout {
	t.Helper()
	r := &meshv1alpha1.Rollout{}
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "mesh_v1alpha1_rollout_gamma.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkReplicaWebhooks sends the replica a defaulting and a validating review of a Rollout
// directly, as the API server would through the webhook Service.
func checkReplicaWebhooks(t *testing.T, r *replica) {
	t.Helper()
	ro := sampleRollout(t)
	ro.Namespace = "default"
	raw, err := json.Marshal(ro)
	if err != nil {
		t.Fatal(err)
	}
	if resp := review(t, r, "/mutate-mesh-sluice-dev-v1alpha1-rollout", raw); !resp.Allowed || len(resp.Patch) == 0 {
		t.Errorf("%s: defaulting review: allowed %v, patch %q, want a patch", r.name, resp.Allowed, resp.Patch)
	}
	// Its target Deployment does not exist: allowed, with a warning that says so.
	resp := review(t, r, "/validate-mesh-sluice-dev-v1alpha1-rollout", raw)
	if !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, "\n"), "spec.targetRef") {
		t.Errorf("%s: validating review of a Rollout whose target is missing: allowed %v, warnings %q", r.name, resp.Allowed, resp.Warnings)
	}
}

func review(t *testing.T, r *replica, path string, object []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	req := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("review-" + r.name),
			Kind:      metav1.GroupVersionKind{Group: meshv1alpha1.GroupVersion.Group, Version: meshv1alpha1.GroupVersion.Version, Kind: "Rollout"},
			Resource:  metav1.GroupVersionResource{Group: meshv1alpha1.GroupVersion.Group, Version: meshv1alpha1.GroupVersion.Version, Resource: "rollouts"},
			Namespace: "default", Name: "inventory", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: object},
		},
	}
	body, _ := json.Marshal(req)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the test's own certificate
	resp, err := c.Post("https://"+r.webhook+path, "application/json", bytes.NewReader(body))                                       //nolint:noctx // test, local
	if err != nil {
		t.Fatalf("%s: POST %s: %v", r.name, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("%s: POST %s: %s: %v", r.name, path, resp.Status, err)
	}
	return out.Response
}
