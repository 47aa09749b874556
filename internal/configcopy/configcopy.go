// Package configcopy copies the ConfigMaps and Secrets a pod template references, per revision,
// under content-hashed names, and points the template at the copies. A change of a source then
// changes the template (a new copy name), so it is released like an image change, and a
// revision keeps seeing the content it was released with (copies are immutable).
// Pure: objects in, objects out; the controller reads the sources and applies the copies.
package configcopy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kinds.
const (
	KindConfigMap = "ConfigMap"
	KindSecret    = "Secret"
)

// hashLen is the number of hex characters of a content hash.
const hashLen = 10

// maxNameLen is the longest name of a ConfigMap or Secret (a DNS-1123 subdomain).
const maxNameLen = 253

// Ref names a ConfigMap or Secret a pod template references.
type Ref struct {
	Kind string // KindConfigMap or KindSecret
	Name string
	// Optional: every reference to it in the template is optional. One required reference
	// makes it required (the pod does not start without it).
	Optional bool
}

// Key is the map key of a kind and name ("ConfigMap/app-config").
func Key(kind, name string) string { return kind + "/" + name }

// visitFunc is called for each reference; name points into the template so that a caller
// may rewrite it.
type visitFunc func(kind string, name *string, optional *bool)

// walk calls visit for every ConfigMap and Secret reference of spec: env and envFrom of
// containers and init containers, and configMap, secret and projected volumes. Ephemeral
// containers are not part of a template; imagePullSecrets and volume plugins' secretRefs are
// read by the kubelet, not mounted into the pod, so they are not config.
func walk(spec *corev1.PodSpec, visit visitFunc) {
	ref := func(kind string, name *string, optional *bool) {
		if *name != "" {
			visit(kind, name, optional)
		}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for j := range c.Env {
				if vf := c.Env[j].ValueFrom; vf != nil {
					if r := vf.ConfigMapKeyRef; r != nil {
						ref(KindConfigMap, &r.Name, r.Optional)
					}
					if r := vf.SecretKeyRef; r != nil {
						ref(KindSecret, &r.Name, r.Optional)
					}
				}
			}
			for j := range c.EnvFrom {
				if r := c.EnvFrom[j].ConfigMapRef; r != nil {
					ref(KindConfigMap, &r.Name, r.Optional)
				}
				if r := c.EnvFrom[j].SecretRef; r != nil {
					ref(KindSecret, &r.Name, r.Optional)
				}
			}
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if s := v.ConfigMap; s != nil {
			ref(KindConfigMap, &s.Name, s.Optional)
		}
		if s := v.Secret; s != nil {
			ref(KindSecret, &s.SecretName, s.Optional)
		}
		if p := v.Projected; p != nil {
			for j := range p.Sources {
				if s := p.Sources[j].ConfigMap; s != nil {
					ref(KindConfigMap, &s.Name, s.Optional)
				}
				if s := p.Sources[j].Secret; s != nil {
					ref(KindSecret, &s.Name, s.Optional)
				}
			}
		}
	}
}

// Refs lists the ConfigMaps and Secrets t references, sorted by kind then name, each once.
func Refs(t *corev1.PodTemplateSpec) []Ref {
	seen := map[string]int{} // Key -> index in refs
	var refs []Ref
	// walk only reads here: it takes a pointer so that Rewrite can share it.
	walk(&t.Spec, func(kind string, name *string, optional *bool) {
		opt := ptr.Deref(optional, false)
		k := Key(kind, *name)
		if i, ok := seen[k]; ok {
			refs[i].Optional = refs[i].Optional && opt
			return
		}
		seen[k] = len(refs)
		refs = append(refs, Ref{Kind: kind, Name: *name, Optional: opt})
	})
	slices.SortFunc(refs, func(a, b Ref) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return refs
}

// Rewrite returns a deep copy of t in which every reference to a source named in copies
// (keyed by Key) points at the copy instead. Other references are left as they are.
func Rewrite(t *corev1.PodTemplateSpec, copies map[string]string) *corev1.PodTemplateSpec {
	out := t.DeepCopy()
	walk(&out.Spec, func(kind string, name *string, _ *bool) {
		if c, ok := copies[Key(kind, *name)]; ok {
			*name = c
		}
	})
	return out
}

// ContentHash identifies the content of a ConfigMap (data, binaryData) or Secret (type, data;
// stringData never reaches storage): 10 lowercase hex characters of an HMAC-SHA256 keyed with
// salt, so that a copy's name alone does not let anyone test guesses of a Secret's value.
func ContentHash(obj client.Object, salt string) (string, error) {
	h := hmac.New(sha256.New, []byte(salt))
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		if o == nil {
			return "", fmt.Errorf("configcopy: nil ConfigMap")
		}
		writeField(h, []byte(KindConfigMap))
		writeMap(h, o.Data)
		writeMap(h, o.BinaryData)
	case *corev1.Secret:
		if o == nil {
			return "", fmt.Errorf("configcopy: nil Secret")
		}
		typ := o.Type
		if typ == "" {
			typ = corev1.SecretTypeOpaque // what the API server stores for an empty type
		}
		writeField(h, []byte(KindSecret))
		writeField(h, []byte(typ))
		writeMap(h, o.Data)
	default:
		return "", fmt.Errorf("configcopy: cannot hash a %T, only a ConfigMap or Secret", obj)
	}
	return hex.EncodeToString(h.Sum(nil))[:hashLen], nil
}

// writeField writes b length-prefixed, so that no two different sequences of fields encode
// alike ({"a":"bc"} and {"ab":"c"}).
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// writeMap writes the entry count, then the entries in key order. A nil and an empty map
// encode alike: the stored content is the same.
func writeMap[V string | []byte](h hash.Hash, m map[string]V) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(m)))
	h.Write(n[:])
	for _, k := range slices.Sorted(maps.Keys(m)) {
		writeField(h, []byte(k))
		writeField(h, []byte(m[k]))
	}
}

// CopyName is "<source>-<hash>", source cut so that the result is at most 253 characters.
// The cut drops trailing '-' and '.' so that the result stays a DNS-1123 subdomain.
func CopyName(source, hash string) string {
	if n := maxNameLen - len(hash) - 1; len(source) > n {
		source = source[:max(n, 0)]
	}
	source = strings.TrimRight(source, "-.")
	if source == "" {
		return hash
	}
	return source + "-" + hash
}

// Copy builds the copy of a source ConfigMap or Secret under name in the source's namespace.
// It is immutable (a revision always sees the same content, and the kubelet stops watching
// it) and carries only the given labels and annotations: the source's labels could match a
// selector of the user's.
func Copy(source client.Object, name string, labels, annotations map[string]string) (client.Object, error) {
	meta := func(ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: maps.Clone(labels), Annotations: maps.Clone(annotations)}
	}
	switch s := source.(type) {
	case *corev1.ConfigMap:
		if s == nil {
			return nil, fmt.Errorf("configcopy: nil ConfigMap")
		}
		return &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: KindConfigMap},
			ObjectMeta: meta(s.Namespace),
			Data:       maps.Clone(s.Data),
			BinaryData: cloneBytes(s.BinaryData),
			Immutable:  ptr.To(true),
		}, nil
	case *corev1.Secret:
		if s == nil {
			return nil, fmt.Errorf("configcopy: nil Secret")
		}
		return &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: KindSecret},
			ObjectMeta: meta(s.Namespace),
			Type:       s.Type,
			Data:       cloneBytes(s.Data),
			Immutable:  ptr.To(true),
		}, nil
	default:
		return nil, fmt.Errorf("configcopy: cannot copy a %T, only a ConfigMap or Secret", source)
	}
}

// cloneBytes deep-copies m, values included (maps.Clone would share the byte slices).
func cloneBytes(m map[string][]byte) map[string][]byte {
	if m == nil {
		return nil
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
