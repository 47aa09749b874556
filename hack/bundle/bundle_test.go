package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
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
