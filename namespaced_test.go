package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestNamespacedInstall runs the manager binary as config/namespaced installs it: as its
// ServiceAccount, with only that overlay's RBAC (the manager's role bound in `apps`, cluster
// reads of CRDs and Namespaces) and its arguments. It acts in `apps`, leaves other namespaces
// alone, and is never refused anything.
func TestNamespacedInstall(t *testing.T) {
	objs := kustomizeBuild(t, filepath.Join(testenv.RepoRoot(), "config", "namespaced"))
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	for _, ns := range []string{"sluice-system", "apps", "elsewhere"} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	for _, u := range objs {
		switch u.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if err := env.Client.Create(ctx, u); err != nil {
				t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
			}
		case "Deployment":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
				t.Fatal(err)
			}
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	var watch string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--namespaces="); ok {
			watch = v
		}
	}
	if watch != "apps" {
		t.Fatalf("the overlay's manager args %v do not watch apps", args)
	}

	// The ServiceAccount's identity, as the API server sees a token of it.
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "system:serviceaccount:sluice-system:sluice-controller-manager",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:sluice-system"}}, env.Config)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	probe := freeAddr(t)
	// Webhooks and leader election are the overlay's too, but need a Service and certificates
	// (TestTwoReplicasOneLeadsBothServeWebhooks covers them): off here.
	cmd := exec.Command(managerBinary(t), "--kubeconfig="+path, "--namespaces="+watch, "--webhooks=false",
		"--health-probe-bind-address="+probe, "--metrics-bind-address=0", "--policy-namespace=sluice-system",
		"--zap-log-level=debug") // the policy audit logs each pass at debug
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("manager logs:\n%s", logs.String())
		}
	})
	pollStatus(t, &http.Client{Timeout: 2 * time.Second}, "http://"+probe+"/readyz", "", http.StatusOK)

	// The Rollout elsewhere first: by the time the one in apps has status, a manager watching
	// elsewhere would have seen it too.
	mine, other := sampleRollout(t), sampleRollout(t)
	mine.Namespace, other.Namespace = "apps", "elsewhere"
	for _, r := range []*meshv1alpha1.Rollout{other, mine} {
		if err := env.Client.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	waitTargetNotFound(t, env, mine, "the Rollout in apps was not acted on")
	// The policy audit (run once the policies load) reads namespaces and objects too: wait for
	// its first pass, so that a refusal of it shows in the logs checked below.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(logs.String(), `"policy audit`), nil
	}); err != nil {
		t.Fatalf("no policy audit ran: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(other), other); err != nil {
		t.Fatal(err)
	}
	if len(other.Status.Conditions) != 0 {
		t.Errorf("the Rollout in a namespace not watched got status %+v", other.Status)
	}
	var refused []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "forbidden") {
			refused = append(refused, line)
		}
	}
	if len(refused) > 0 {
		t.Errorf("the API server refused the manager %d times, e.g. %s", len(refused), refused[0])
	}
	// And the RoleBinding is what grants it: no binding of the manager's role is cluster-wide.
	var bindings rbacv1.ClusterRoleBindingList
	if err := env.Client.List(ctx, &bindings); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(bindings.Items, func(b rbacv1.ClusterRoleBinding) bool { return b.RoleRef.Name == "sluice-manager-role" }) {
		t.Error("a ClusterRoleBinding grants the manager's role cluster-wide")
	}
}

// kustomizeBuild renders a kustomization like `kubectl apply -k` would.
func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}
