// Command upstream-crds copies the Linkerd and Consul CRDs that are not on the Go module proxy
// into internal/testenv/crds, without their description prose: the tests need only the schemas,
// which the real API server then enforces on every object Sluice generates.
//
//	go run ./hack/upstream-crds ../shared/testdata/crds internal/testenv/crds
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: upstream-crds <source dir> <destination dir>")
		os.Exit(2)
	}
	if err := copyAll(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func copyAll(src, dst string) error {
	for _, mesh := range []string{"linkerd", "consul"} {
		files, err := filepath.Glob(filepath.Join(src, mesh, "*.yaml"))
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return fmt.Errorf("no CRDs under %s", filepath.Join(src, mesh))
		}
		sort.Strings(files)
		if err := os.MkdirAll(filepath.Join(dst, mesh), 0o755); err != nil {
			return err
		}
		for _, f := range files {
			out, err := strip(f)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if err := os.WriteFile(filepath.Join(dst, mesh, filepath.Base(f)), out, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// strip re-encodes every YAML document of the file without schema descriptions.
func strip(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out bytes.Buffer
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(doc)) == "" {
			continue
		}
		var obj map[string]any
		if err := sigsyaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		dropDescriptions(obj)
		enc, err := sigsyaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(enc)
	}
	return out.Bytes(), nil
}

// dropDescriptions removes every "description" whose value is text. A property named
// "description" is a schema (a map), so it stays.
func dropDescriptions(v any) {
	switch t := v.(type) {
	case map[string]any:
		if _, ok := t["description"].(string); ok {
			delete(t, "description")
		}
		for _, c := range t {
			dropDescriptions(c)
		}
	case []any:
		for _, c := range t {
			dropDescriptions(c)
		}
	}
}
