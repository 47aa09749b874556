package webhooks_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/admission/offline"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestOfflineAndAdmissionVerdictsAreIdentical: `sluice policy test` and the webhook give the
// same verdicts on the same inputs: config/samples/ and every built-in's examples, applied
// for real through the API server, object by object, against the offline review of the same
// file. The deny policies named in the API server's refusal and the warn policies in its
// warnings must be exactly the offline ones.
func TestOfflineAndAdmissionVerdictsAreIdentical(t *testing.T) {
	ctx := context.Background()
	waitFor(t, "the built-in library alone in force", 5*time.Second, func() bool {
		return len(engine.Policies()) == len(admission.Library())
	})
	lib := admission.NewOPA()
	if l := lib.Load(ctx, admission.Library(), admission.Config{}); len(l.Errors) > 0 {
		t.Fatal(l.Errors)
	}
	root := testenv.RepoRoot()
	files, _ := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	examples, _ := filepath.Glob(filepath.Join(root, "internal", "admission", "library", "examples", "*", "*", "*.yaml"))
	files = append(files, examples...)
	var denied, warned int
	for i, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		rel, _ := filepath.Rel(root, f)
		t.Run(rel, func(t *testing.T) {
			ms, err := admission.ReadManifests(f)
			if err != nil {
				t.Fatal(err)
			}
			// Fresh namespaces for every file: its Namespace objects and its default.
			prefix := fmt.Sprintf("eq%d-", i)
			for _, m := range ms {
				u := &unstructured.Unstructured{Object: m.Object}
				if u.GetKind() == "Namespace" {
					u.SetName(prefix + u.GetName())
					continue
				}
				ns := u.GetNamespace()
				if ns == "" {
					ns = "default"
				}
				u.SetNamespace(prefix + ns)
			}
			want := map[string]verdict{}
			for _, fd := range offline.Review(ctx, lib, ms, offline.Options{Namespace: prefix + "default"}) {
				v := want[fd.Object]
				switch fd.Mode {
				case admission.Deny:
					v.deny = append(v.deny, fd.Policy)
				case admission.Warn:
					v.warn = append(v.warn, fd.Policy)
				}
				want[fd.Object] = v
			}
			// Namespaces first, created once with their final labels (the webhook's cache
			// must not see them half-made).
			made := map[string]bool{}
			for _, m := range ms {
				if u := (&unstructured.Unstructured{Object: m.Object}); u.GetKind() == "Namespace" {
					ensureNamespace(t, u.GetName(), u.GetLabels())
					made[u.GetName()] = true
				}
			}
			for _, m := range ms {
				if u := (&unstructured.Unstructured{Object: m.Object}); u.GetKind() != "Namespace" && !made[u.GetNamespace()] {
					ensureNamespace(t, u.GetNamespace(), nil)
					made[u.GetNamespace()] = true
				}
			}
			for _, m := range ms {
				u := (&unstructured.Unstructured{Object: m.Object}).DeepCopy()
				if u.GetKind() == "Namespace" {
					continue
				}
				name := fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
				warnings.take()
				// Server-side apply, as GitOps tools and kubectl apply --server-side write.
				err := warnClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("gitops"))
				got := verdict{warn: policiesIn(warnings.take())}
				if err != nil {
					if !strings.Contains(err.Error(), "refused by admission policy") {
						t.Fatalf("%s: refused for another reason than policy: %v", name, err)
					}
					got.deny = policiesIn([]string{err.Error()})
				} else {
					t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
				}
				w := want[name]
				w.deny, w.warn = sorted(w.deny), sorted(w.warn)
				if !slices.Equal(got.deny, w.deny) || !slices.Equal(got.warn, w.warn) {
					t.Errorf("%s: admission %+v, offline %+v", name, got, w)
				}
				denied += len(got.deny)
				warned += len(got.warn)
			}
		})
	}
	t.Logf("%d files: %d deny and %d warn verdicts, identical offline and at admission", len(files), denied, warned)
	if denied == 0 || warned == 0 {
		t.Error("the comparison saw no deny or no warn verdict: it proves nothing")
	}
}

type verdict struct{ deny, warn []string }

// policiesIn are the built-in policy names in [brackets] of admission messages, sorted.
func policiesIn(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		for _, p := range admission.Library() {
			if strings.Contains(m, "["+p.Name+"]") {
				out = append(out, p.Name)
			}
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return slices.Compact(out)
}

// ensureNamespace creates the namespace, or sets its labels.
func ensureNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	err := env.Client.Create(ctx, ns)
	if apierrors.IsAlreadyExists(err) {
		if err = env.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err == nil {
			ns.Labels = labels
			err = env.Client.Update(ctx, ns)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}
