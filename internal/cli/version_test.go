package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// TestVersion: the plugin's version is the one linked in at build time; the manager's is the
// tag of its Deployment's image, found by the labels config/default gives it.
func TestVersion(t *testing.T) {
	if r := run(t, "version"); r.code != 0 || r.stdout != "plugin:  "+testVersion+"\nmanager: unknown (no Sluice manager Deployment found in the cluster)\n" {
		t.Errorf("before the manager is installed: exit code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	f := newFixture(t, "sluice-system")
	labels := map[string]string{"control-plane": "controller-manager", "app.kubernetes.io/name": "sluice"}
	tmpl := podTemplate("sluice", "ghcr.io/sluice-mesh/sluice:v0.1.0")
	tmpl.Labels = labels
	// A sidecar first: the version is the manager container's.
	tmpl.Spec.Containers = append([]corev1.Container{{Name: "proxy", Image: "example.com/proxy:1.2"}}, tmpl.Spec.Containers...)
	tmpl.Spec.Containers[1].Name = "manager"
	f.create(&appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sluice-controller-manager", Namespace: f.ns, Labels: labels},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
	})
	want := "plugin:  " + testVersion + "\nmanager: v0.1.0 (image ghcr.io/sluice-mesh/sluice:v0.1.0, Deployment sluice-system/sluice-controller-manager)\n"
	if r := run(t, "version"); r.code != 0 || r.stdout != want {
		t.Errorf("exit code %d, stdout %q, want %q; stderr %q", r.code, r.stdout, want, r.stderr)
	}

	// An unreachable cluster: the plugin's version still, the manager's unknown with the reason.
	bad := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c}}]\ncurrent-context: c\n"
	if err := os.WriteFile(bad, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "version", "--kubeconfig", bad)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "plugin:  "+testVersion+"\nmanager: unknown (") {
		t.Errorf("unreachable cluster: exit code %d, stdout %q", r.code, r.stdout)
	}
	if r := run(t, "version", "--client"); r.code != 0 || r.stdout != "plugin:  "+testVersion+"\n" {
		t.Errorf("--client: exit code %d, stdout %q", r.code, r.stdout)
	}
}

// TestCompletion: the shells' completion scripts, and Rollout names completed from the cluster.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if r := run(t, "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "kubectl-sluice") {
			t.Errorf("completion %s: exit code %d, %d bytes", shell, r.code, len(r.stdout))
		}
	}
	f := newFixture(t, "completion")
	for _, name := range []string{"checkout", "catalog"} {
		f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named(name), Spec: canarySpec(name)}, nil)
	}
	r := run(t, "__complete", "status", "-n", "completion", "c")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "catalog\ncheckout\n:4\n") {
		t.Errorf("completing a Rollout name: exit code %d, stdout %q", r.code, r.stdout)
	}
}
