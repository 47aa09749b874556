package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestHelpListsTheFlags runs the real binary with --help, as a person would.
func TestHelpListsTheFlags(t *testing.T) {
	out, err := exec.Command(managerBinary(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, f := range []string{"metrics-bind-address", "metrics-secure", "health-probe-bind-address", "leader-elect", "namespaces", "webhooks", "webhook-port", "zap-log-level", "kubeconfig", "kube-api-qps", "kube-api-burst", "consul-enterprise", "pprof-bind-address", "max-concurrent-reconciles"} {
		if !strings.Contains(string(out), "-"+f) {
			t.Errorf("--help does not list --%s:\n%s", f, out)
		}
	}
}

// The container's memory limit becomes a soft limit 10% below it, unless GOMEMLIMIT says otherwise.
func TestSoftMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		gomemlimit, limit string
		want              int64
	}{
		{"", "536870912", 483183819},
		{"400MiB", "536870912", 0},
		{"", "", 0},
		{"", "0", 0},
		{"", "lots", 0},
	} {
		if got := softMemoryLimit(c.gomemlimit, c.limit); got != c.want {
			t.Errorf("softMemoryLimit(%q, %q) = %d, want %d", c.gomemlimit, c.limit, got, c.want)
		}
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// managerBinary builds the manager once per test run.
func managerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-manager-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "manager")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestManagerBinaryServesProbesMetricsAndWebhooks builds the real binary and runs it against a
// real API server with the generated webhook configurations installed.
func TestManagerBinaryServesProbesMetricsAndWebhooks(t *testing.T) {
	env, err := testenv.Start(testenv.Options{WebhookPaths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	dir := t.TempDir()

	bin := managerBinary(t)
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	probeAddr, metricsAddr := freeAddr(t), freeAddr(t)
	wo := env.WebhookInstallOptions
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--kubeconfig="+kubeconfig,
		"--health-probe-bind-address="+probeAddr,
		"--metrics-bind-address="+metricsAddr,
		"--webhook-host="+wo.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", wo.LocalServingPort),
		"--webhook-cert-dir="+wo.LocalServingCertDir,
		"--zap-log-level=info",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("manager logs:\n%s", logs.String())
		}
	})

	plain := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		pollStatus(t, plain, "http://"+probeAddr+path, "", http.StatusOK)
	}

	// Metrics are served over HTTPS to callers the API server authenticates and authorizes.
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	metricsURL := "https://" + metricsAddr + "/metrics"
	pollStatus(t, insecure, metricsURL, "", http.StatusUnauthorized)
	token := metricsReaderToken(t, env)
	pollStatus(t, insecure, metricsURL, token, http.StatusOK)

	// The binary's webhook server defaults a Rollout and its controller reports on it.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "manager-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	r := sampleRollout(t)
	r.Namespace = ns.Name
	if err := env.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.ProgressDeadline == nil || r.Spec.ProgressDeadline.Duration != meshv1alpha1.DefaultProgressDeadline {
		t.Errorf("the binary's defaulting webhook did not set spec.progressDeadline: %v", r.Spec.ProgressDeadline)
	}
	waitTargetNotFound(t, env, r, "the Rollout controller did not report its missing target")

	// After a reconcile, the operator's own metrics are there too.
	body := pollStatus(t, insecure, metricsURL, token, http.StatusOK)
	for _, want := range []string{
		"controller_runtime_reconcile_total", "rest_client_requests_total",
		`sluice_rollout_phase{namespace="` + ns.Name + `",phase="Initializing",rollout="inventory"} 1`,
		`sluice_rollout_canary_weight{namespace="` + ns.Name + `",rollout="inventory"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// metricsReaderToken creates a ServiceAccount allowed to GET /metrics and returns its token.
func metricsReaderToken(t *testing.T, env *testenv.Env) string {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: "default"}}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"}, Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}},
	}
	for _, o := range []client.Object{sa, role, binding} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// pollStatus GETs url until it answers with want, and returns the body.
func pollStatus(t *testing.T, c *http.Client, url, token string, want int) string {
	t.Helper()
	var last string
	var body []byte
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ = io.ReadAll(resp.Body)
		last = resp.Status
		return resp.StatusCode == want, nil
	})
	if err != nil {
		t.Fatalf("GET %s: want %d, last answer %s", url, want, last)
	}
	return string(body)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// waitTargetNotFound waits until the manager reported, for the current generation, that the
// Rollout's target Deployment is missing: the sign that its Rollout controller acts on it.
func waitTargetNotFound(t *testing.T, env *testenv.Env, r *meshv1alpha1.Rollout, what string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
			return false, nil
		}
		c := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionStalled)
		return c != nil && c.Reason == "TargetNotFound" && r.Status.ObservedGeneration == r.Generation, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (status %+v)", what, err, r.Status)
	}
}
