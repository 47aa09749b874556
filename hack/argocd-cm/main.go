// Command argocd-cm writes the status fixtures, their copies in Argo CD's test layout, the
// expected outputs of the Rollout actions' tests and config/argocd/argocd-cm.yaml (see
// package render). Run from the repository's root: go run ./hack/argocd-cm
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluice-mesh/sluice/hack/argocd-cm/render"
)

func main() {
	if err := run("."); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-cm:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	files, err := render.Files(root)
	if err != nil {
		return err
	}
	// Fixtures that are no longer generated go: the testdata folders hold generated files only.
	for _, dir := range []string{render.FixturesDir, filepath.Join(render.KindDir("Rollout"), "actions", "testdata")} {
		if err := prune(root, dir, files); err != nil {
			return err
		}
	}
	for _, kind := range render.Kinds {
		if err := prune(root, filepath.Join(render.KindDir(kind), "testdata"), files); err != nil {
			return err
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("argocd-cm: %d files written (%s and its fixtures)\n", len(paths), render.Snippet)
	return nil
}

// prune removes the YAML files under dir that are not generated any more.
func prune(root, dir string, keep map[string][]byte) error {
	return filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if _, ok := keep[filepath.ToSlash(rel)]; !ok {
			return os.Remove(p)
		}
		return nil
	})
}
