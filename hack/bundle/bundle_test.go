package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	opv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func repoRoot() string { return filepath.Join("..", "..") }

func defaultOptions() options {
	o := options{root: repoRoot(), out: filepath.Join(repoRoot(), "bundles", "sluice"), version: "0.1.0", image: "ghcr.io/sluice-mesh/sluice:v0.1.0", channel: "candidate"}
	return o
}

// The committed bundle must be what the generator writes from config/ today.
func TestCommittedBundleIsCurrent(t *testing.T) {
	o := defaultOptions()
	files, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, f := range files {
		want[f.path] = f.data
	}
	var onDisk []string
	err = filepath.WalkDir(o.out, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(o.out, p)
		onDisk = append(onDisk, rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if w, ok := want[rel]; !ok {
			t.Errorf("%s is in the bundle but not generated any more", rel)
		} else if !bytes.Equal(w, data) {
			t.Errorf("%s is stale: run make bundle", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(onDisk)
	if len(onDisk) != len(files) {
		t.Errorf("bundle has %d files, the generator writes %d: run make bundle", len(onDisk), len(files))
	}
}

// The bundle passes OLM's own validators: the default bundle checks plus OperatorHub's.
func TestBundlePassesOLMValidation(t *testing.T) {
	b, err := manifests.GetBundleFromDir(defaultOptions().out)
	if err != nil {
		t.Fatal(err)
	}
	if b.CSV == nil || len(b.V1CRDs) != 3 {
		t.Fatalf("bundle has CSV %v and %d CRDs, want a CSV and 3", b.CSV != nil, len(b.V1CRDs))
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator, validation.StandardCategoriesValidator,
		validation.StandardCapabilitiesValidator, validation.GoodPracticesValidator,
	)
	for _, r := range validators.Validate(b) {
		for _, e := range r.Errors {
			t.Errorf("%s: %v", r.Name, e)
		}
		for _, w := range r.Warnings {
			t.Logf("warning %s: %v", r.Name, w)
		}
	}
	if n := len(b.CSV.Spec.WebhookDefinitions); n != 8 {
		t.Errorf("CSV has %d webhook definitions, want 8 (defaulting and validation for 3 kinds, and the two policy webhooks)", n)
	}
}

// Every install mode is offered: the manager watches OLM's target namespaces, namespaced
// permissions go where OLM scopes them, and only cluster-scoped kinds are granted cluster-wide.
func TestBundleSupportsNamespacedInstallModes(t *testing.T) {
	csv := baseCSV(defaultOptions())
	for _, m := range csv.Spec.InstallModes {
		if !m.Supported {
			t.Errorf("install mode %s not supported", m.Type)
		}
	}
	files, err := build(defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, f := range files {
		if filepath.Base(f.path) == "sluice.clusterserviceversion.yaml" {
			data = f.data
		}
	}
	var got opv1alpha1.ClusterServiceVersion
	if err := yaml.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	spec := got.Spec.InstallStrategy.StrategySpec
	for _, p := range spec.ClusterPermissions {
		for _, r := range p.Rules {
			if !clusterScoped(r) {
				t.Errorf("clusterPermissions grant namespaced kinds cluster-wide: %v", r)
			}
		}
	}
	env := spec.DeploymentSpecs[0].Spec.Template.Spec.Containers[0].Env
	if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool {
		return e.Name == "SLUICE_NAMESPACES" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.annotations['olm.targetNamespaces']"
	}) {
		t.Errorf("the manager does not read OLM's target namespaces: env %v", env)
	}
}
