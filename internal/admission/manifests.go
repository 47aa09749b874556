package admission

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Manifest is one object read from a file, for the offline review.
type Manifest struct {
	File string
	// Index is the object's position in its file (0-based, counting YAML documents).
	Index  int
	Object map[string]any
}

// Name is kind namespace/name as users read it.
func (m Manifest) Name() string {
	md, _ := m.Object["metadata"].(map[string]any)
	kind, _ := m.Object["kind"].(string)
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// ReadManifests reads every .yaml, .yml and .json file under the paths (files or folders),
// one object per YAML document; kind: List items are objects of their own. Files a
// kustomization names are read like the others (kustomize itself is not run).
func ReadManifests(paths ...string) ([]Manifest, error) {
	var out []Manifest
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, strings.ToLower(filepath.Ext(p))) {
				return nil
			}
			objs, err := readFile(p)
			if err != nil {
				return err
			}
			out = append(out, objs...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readFile(p string) ([]Manifest, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", p, i+1, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", p, i+1, err)
		}
		if obj == nil {
			continue
		}
		if kind, _ := obj["kind"].(string); strings.HasSuffix(kind, "List") {
			items, _ := obj["items"].([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					out = append(out, Manifest{File: p, Index: i, Object: m})
				}
			}
			continue
		}
		if _, ok := obj["kind"].(string); !ok {
			continue // kustomization.yaml and other files that are not objects
		}
		out = append(out, Manifest{File: p, Index: i, Object: obj})
	}
}

// Inputs turns manifests into review inputs as the webhook would see them: namespace labels
// from the Namespace objects among them (else from defaultLabels), and for each Deployment
// the Rollouts among them that release it. Objects without a namespace get defaultNamespace.
func Inputs(ms []Manifest, defaultNamespace string, defaultLabels map[string]string) []Input {
	nsLabels := map[string]map[string]string{}
	released := map[string][]string{}
	for _, m := range ms {
		md, _ := m.Object["metadata"].(map[string]any)
		switch m.Object["kind"] {
		case "Namespace":
			name, _ := md["name"].(string)
			labels := map[string]string{}
			if l, ok := md["labels"].(map[string]any); ok {
				for k, v := range l {
					labels[k] = fmt.Sprint(v)
				}
			}
			nsLabels[name] = labels
		case "Rollout":
			if !strings.HasPrefix(fmt.Sprint(m.Object["apiVersion"]), "mesh.sluice.dev/") {
				continue
			}
			ns := namespaceOf(m.Object, defaultNamespace)
			name, _ := md["name"].(string)
			target, _ := nested(m.Object, "spec", "targetRef", "name").(string)
			released[ns+"/"+target] = append(released[ns+"/"+target], name)
		}
	}
	out := make([]Input, 0, len(ms))
	for _, m := range ms {
		obj := m.Object
		ns := namespaceOf(obj, defaultNamespace)
		if md, ok := obj["metadata"].(map[string]any); ok && md["namespace"] == nil && ns != "" {
			md["namespace"] = ns
		}
		labels, ok := nsLabels[ns]
		if !ok {
			labels = defaultLabels
		}
		in := Input{Operation: Create, Object: obj, NamespaceLabels: labels}
		if obj["kind"] == "Deployment" {
			md, _ := obj["metadata"].(map[string]any)
			name, _ := md["name"].(string)
			in.ReleasedBy = released[ns+"/"+name]
		}
		out = append(out, in)
	}
	return out
}

func namespaceOf(obj map[string]any, def string) string {
	if ns, _ := nested(obj, "metadata", "namespace").(string); ns != "" {
		return ns
	}
	return def
}

func nested(obj map[string]any, path ...string) any {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}
