package configcopy_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-mesh/sluice/internal/configcopy"
)

func cmKeyEnv(name string, optional *bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "E", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k", Optional: optional}}}
}

func secretKeyEnv(name string, optional *bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "E", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "k", Optional: optional}}}
}

func cmEnvFrom(name string, optional *bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional}}
}

func secretEnvFrom(name string, optional *bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional}}
}

func cmVolume(name string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: "v-" + name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: optional}}}
}

func secretVolume(name string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: "v-" + name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: name, Optional: optional}}}
}

func projected(cm, secret string, optional *bool) corev1.Volume {
	return corev1.Volume{Name: "p-" + cm + "-" + secret, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: cm}, Optional: optional}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Optional: optional}},
			{DownwardAPI: &corev1.DownwardAPIProjection{}},
		}}}}
}

// fullTemplate references ConfigMaps and Secrets in every place Refs looks at, with duplicates
// and optional/required mixes, and in the places it must ignore.
func fullTemplate() *corev1.PodTemplateSpec {
	yes, no := ptr.To(true), ptr.To(false)
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{
				Name:    "init",
				Env:     []corev1.EnvVar{cmKeyEnv("init-cm", nil), {Name: "PLAIN", Value: "v"}},
				EnvFrom: []corev1.EnvFromSource{secretEnvFrom("init-secret", yes)},
			}},
			Containers: []corev1.Container{{
				Name: "app",
				Env: []corev1.EnvVar{
					cmKeyEnv("env-cm", yes), secretKeyEnv("env-secret", nil),
					cmKeyEnv("shared", yes), // optional here, required in a volume
					{Name: "FIELD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				EnvFrom: []corev1.EnvFromSource{cmEnvFrom("envfrom-cm", no), secretEnvFrom("envfrom-secret", yes)},
			}, {
				Name:    "sidecar",
				Env:     []corev1.EnvVar{secretKeyEnv("opt-secret", yes)},
				EnvFrom: []corev1.EnvFromSource{secretEnvFrom("opt-secret", yes), cmEnvFrom("env-cm", yes)},
			}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", EnvFrom: []corev1.EnvFromSource{cmEnvFrom("ephemeral-cm", nil)},
			}}},
			Volumes: []corev1.Volume{
				cmVolume("vol-cm", nil), secretVolume("vol-secret", yes), cmVolume("shared", nil),
				projected("proj-cm", "proj-secret", yes),
				{Name: "empty", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull-secret"}},
		},
	}
}

func TestRefs(t *testing.T) {
	yes := ptr.To(true)
	cases := []struct {
		name string
		t    *corev1.PodTemplateSpec
		want []configcopy.Ref
	}{
		{"empty", &corev1.PodTemplateSpec{}, nil},
		{"every place", fullTemplate(), []configcopy.Ref{
			{Kind: "ConfigMap", Name: "env-cm", Optional: true},
			{Kind: "ConfigMap", Name: "envfrom-cm"},
			{Kind: "ConfigMap", Name: "init-cm"},
			{Kind: "ConfigMap", Name: "proj-cm", Optional: true},
			{Kind: "ConfigMap", Name: "shared"},
			{Kind: "ConfigMap", Name: "vol-cm"},
			{Kind: "Secret", Name: "env-secret"},
			{Kind: "Secret", Name: "envfrom-secret", Optional: true},
			{Kind: "Secret", Name: "init-secret", Optional: true},
			{Kind: "Secret", Name: "opt-secret", Optional: true},
			{Kind: "Secret", Name: "proj-secret", Optional: true},
			{Kind: "Secret", Name: "vol-secret", Optional: true},
		}},
		{"required after optional", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{secretEnvFrom("s", yes)}}},
			Volumes:    []corev1.Volume{secretVolume("s", ptr.To(false))},
		}}, []configcopy.Ref{{Kind: "Secret", Name: "s"}}},
		{"same name, both kinds", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{secretVolume("x", yes), cmVolume("x", nil)},
		}}, []configcopy.Ref{{Kind: "ConfigMap", Name: "x"}, {Kind: "Secret", Name: "x", Optional: true}}},
		{"optional ConfigMap volume, required env", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Env: []corev1.EnvVar{cmKeyEnv("c", nil)}}},
			Volumes:    []corev1.Volume{cmVolume("c", yes), cmVolume("d", yes)},
		}}, []configcopy.Ref{{Kind: "ConfigMap", Name: "c"}, {Kind: "ConfigMap", Name: "d", Optional: true}}},
		{"only ignored places", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
			Volumes: []corev1.Volume{{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: "d", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-secret"}}}}},
		}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := configcopy.Refs(tc.t); !slices.Equal(got, tc.want) {
				t.Errorf("Refs:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	in := fullTemplate()
	before := in.DeepCopy()
	copies := map[string]string{}
	for _, r := range configcopy.Refs(in) {
		if r.Name == "opt-secret" {
			continue // not copied (e.g. an optional source that does not exist): left as it is
		}
		copies[configcopy.Key(r.Kind, r.Name)] = r.Name + "-copy"
	}
	copies[configcopy.Key(configcopy.KindSecret, "pull-secret")] = "pull-secret-copy" // not config
	copies[configcopy.Key(configcopy.KindConfigMap, "ephemeral-cm")] = "ephemeral-cm-copy"
	copies[configcopy.Key(configcopy.KindSecret, "shared")] = "wrong-kind" // shared is a ConfigMap

	out := configcopy.Rewrite(in, copies)

	if !equality.Semantic.DeepEqual(in, before) {
		t.Fatal("Rewrite modified its input")
	}
	var got []string
	for _, r := range configcopy.Refs(out) {
		got = append(got, configcopy.Key(r.Kind, r.Name))
	}
	want := []string{
		"ConfigMap/env-cm-copy", "ConfigMap/envfrom-cm-copy", "ConfigMap/init-cm-copy", "ConfigMap/proj-cm-copy",
		"ConfigMap/shared-copy", "ConfigMap/vol-cm-copy",
		"Secret/env-secret-copy", "Secret/envfrom-secret-copy", "Secret/init-secret-copy", "Secret/opt-secret",
		"Secret/proj-secret-copy", "Secret/vol-secret-copy",
	}
	if !slices.Equal(got, want) {
		t.Errorf("refs after Rewrite:\n got %v\nwant %v", got, want)
	}

	// Everything but the rewritten names is as before: undo the renames and compare.
	undo := map[string]string{}
	for k, v := range copies {
		kind, name, _ := strings.Cut(k, "/")
		undo[configcopy.Key(kind, v)] = name
	}
	if back := configcopy.Rewrite(out, undo); !equality.Semantic.DeepEqual(back, before) {
		t.Errorf("Rewrite changed more than reference names")
	}
	if out.Spec.ImagePullSecrets[0].Name != "pull-secret" || out.Spec.EphemeralContainers[0].EnvFrom[0].ConfigMapRef.Name != "ephemeral-cm" {
		t.Errorf("Rewrite touched imagePullSecrets or ephemeral containers")
	}

	// The output shares nothing with the input.
	out.Spec.Volumes[0].ConfigMap.Name = "changed"
	out.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name = "changed"
	if !equality.Semantic.DeepEqual(in, before) {
		t.Error("the output of Rewrite aliases its input")
	}
}

func TestRewriteNoCopies(t *testing.T) {
	in := fullTemplate()
	for _, copies := range []map[string]string{nil, {}} {
		if out := configcopy.Rewrite(in, copies); !equality.Semantic.DeepEqual(out, in) || out == in {
			t.Errorf("Rewrite(%v) is not an equal copy", copies)
		}
	}
}

func cm(data map[string]string, bin map[string][]byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{Data: data, BinaryData: bin}
}

func secret(typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{Type: typ, Data: data}
}

func mustHash(t *testing.T, obj client.Object, salt string) string {
	t.Helper()
	h, err := configcopy.ContentHash(obj, salt)
	if err != nil {
		t.Fatalf("ContentHash: %v", err)
	}
	return h
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{10}$`)

func TestContentHashDiffers(t *testing.T) {
	base := func() *corev1.ConfigMap {
		return cm(map[string]string{"a": "1", "b": "2"}, map[string][]byte{"bin": {0, 1}})
	}
	baseSecret := func() *corev1.Secret {
		return secret(corev1.SecretTypeOpaque, map[string][]byte{"user": []byte("u"), "pass": []byte("p")})
	}
	cases := []struct {
		name string
		a, b client.Object
	}{
		{"data value", base(), cm(map[string]string{"a": "1", "b": "3"}, map[string][]byte{"bin": {0, 1}})},
		{"data key", base(), cm(map[string]string{"a": "1", "c": "2"}, map[string][]byte{"bin": {0, 1}})},
		{"data key added", base(), cm(map[string]string{"a": "1", "b": "2", "c": ""}, map[string][]byte{"bin": {0, 1}})},
		{"binary value", base(), cm(map[string]string{"a": "1", "b": "2"}, map[string][]byte{"bin": {0, 2}})},
		{"binary key", base(), cm(map[string]string{"a": "1", "b": "2"}, map[string][]byte{"bon": {0, 1}})},
		{"data vs binaryData", cm(map[string]string{"k": "v"}, nil), cm(nil, map[string][]byte{"k": []byte("v")})},
		{"key/value boundary", cm(map[string]string{"a": "bc"}, nil), cm(map[string]string{"ab": "c"}, nil)},
		{"entry boundary", cm(map[string]string{"a": "b", "c": "d"}, nil), cm(map[string]string{"a": "b\x00\x00\x00\x00\x00\x00\x00\x01c"}, nil)},
		{"secret value", baseSecret(), secret(corev1.SecretTypeOpaque, map[string][]byte{"user": []byte("u"), "pass": []byte("q")})},
		{"secret key", baseSecret(), secret(corev1.SecretTypeOpaque, map[string][]byte{"user": []byte("u"), "pasz": []byte("p")})},
		{"secret type", baseSecret(), secret(corev1.SecretTypeBasicAuth, map[string][]byte{"user": []byte("u"), "pass": []byte("p")})},
		{"secret key/value boundary", secret("", map[string][]byte{"a": []byte("bc")}), secret("", map[string][]byte{"ab": []byte("c")})},
		{"ConfigMap vs Secret", cm(nil, map[string][]byte{"k": []byte("v")}), secret("", map[string][]byte{"k": []byte("v")})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustHash(t, tc.a, "salt"), mustHash(t, tc.b, "salt")
			if a == b {
				t.Errorf("same hash %s for different content", a)
			}
			if !hexHash.MatchString(a) || !hexHash.MatchString(b) {
				t.Errorf("hashes %q, %q are not 10 lowercase hex characters", a, b)
			}
		})
	}
}

func TestContentHashSame(t *testing.T) {
	data := map[string]string{}
	bin := map[string][]byte{}
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	for _, k := range keys {
		data[k], bin[k] = "v"+k, []byte("b"+k)
	}
	// The same content inserted in the reverse order: a different map layout.
	rdata := map[string]string{}
	rbin := map[string][]byte{}
	for _, k := range slices.Backward(keys) {
		rdata[k], rbin[k] = "v"+k, []byte("b"+k)
	}
	cases := []struct {
		name string
		a, b client.Object
	}{
		{"map order", cm(data, bin), cm(rdata, rbin)},
		{"secret map order", secret("Opaque", bin), secret("Opaque", rbin)},
		{"metadata and immutability ignored", cm(data, nil), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"x": "y"}, ResourceVersion: "7"},
			Data:       rdata, Immutable: ptr.To(true)}},
		{"stringData ignored", secret("Opaque", bin), &corev1.Secret{Type: "Opaque", Data: rbin, StringData: map[string]string{"x": "y"}}},
		{"nil and empty maps", cm(nil, nil), cm(map[string]string{}, map[string][]byte{})},
		{"empty type is Opaque", secret("", bin), secret(corev1.SecretTypeOpaque, bin)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if a, b := mustHash(t, tc.a, "salt"), mustHash(t, tc.b, "salt"); a != b {
				t.Errorf("hashes differ: %s, %s", a, b)
			}
		})
	}
	for range 20 { // map iteration order is random per range: hashing must not depend on it
		if a, b := mustHash(t, cm(data, bin), "s"), mustHash(t, cm(data, bin), "s"); a != b {
			t.Fatalf("unstable hash: %s, %s", a, b)
		}
	}
}

func TestContentHashSalt(t *testing.T) {
	for _, obj := range []client.Object{
		cm(map[string]string{"a": "1"}, nil),
		secret("Opaque", map[string][]byte{"password": []byte("hunter2")}),
	} {
		if a, b := mustHash(t, obj, "uid-1"), mustHash(t, obj, "uid-2"); a == b {
			t.Errorf("%T: salt does not change the hash (%s)", obj, a)
		}
		if a, b := mustHash(t, obj, ""), mustHash(t, obj, "uid-1"); a == b {
			t.Errorf("%T: salt does not change the hash (%s)", obj, a)
		}
	}
}

func TestContentHashRejectsOtherTypes(t *testing.T) {
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Service{}, (*corev1.ConfigMap)(nil), (*corev1.Secret)(nil)} {
		if h, err := configcopy.ContentHash(obj, "s"); err == nil {
			t.Errorf("ContentHash(%T) = %q, want an error", obj, h)
		}
	}
}

func TestCopyName(t *testing.T) {
	const hash = "0123456789"
	cases := []struct {
		name, source, want string
	}{
		{"short", "app-config", "app-config-0123456789"},
		{"exactly fits", strings.Repeat("a", 242), strings.Repeat("a", 242) + "-" + hash},
		{"one too long", strings.Repeat("a", 243), strings.Repeat("a", 242) + "-" + hash},
		{"max length", strings.Repeat("a", 253), strings.Repeat("a", 242) + "-" + hash},
		{"cut at '-'", strings.Repeat("a", 241) + "-bbbb", strings.Repeat("a", 241) + "-" + hash},
		{"cut at '.'", strings.Repeat("a", 241) + ".bbbb", strings.Repeat("a", 241) + "-" + hash},
		{"cut at '.-' run", strings.Repeat("a", 240) + ".-b" + strings.Repeat("f", 10), strings.Repeat("a", 240) + "-" + hash},
		{"cut at '-.-' run", strings.Repeat("a", 239) + "-.-b" + strings.Repeat("f", 10), strings.Repeat("a", 239) + "-" + hash},
		{"cut keeps inner separators", strings.Repeat("a", 236) + "b.c-d.e" + strings.Repeat("f", 10), strings.Repeat("a", 236) + "b.c-d-" + hash},
		{"dotted", "a.b.c", "a.b.c-0123456789"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := configcopy.CopyName(tc.source, hash)
			if got != tc.want {
				t.Errorf("CopyName = %q (len %d), want %q", got, len(got), tc.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("CopyName %q is invalid: %v", got, errs)
			}
		})
	}
	// Every possible cut position of a name full of separators.
	long := strings.Repeat("ab-c.d--e.f-g.", 20)[:253]
	for n := 1; n <= len(long); n++ {
		src := strings.TrimRight(long[:n], "-.")
		if len(validation.IsDNS1123Subdomain(src)) > 0 {
			t.Fatalf("test bug: %q is not a possible source name", src)
		}
		got := configcopy.CopyName(src, hash)
		if len(got) > 253 || !strings.HasSuffix(got, "-"+hash) || len(validation.IsDNS1123Subdomain(got)) > 0 {
			t.Errorf("CopyName(%q) = %q (len %d) is invalid", src, got, len(got))
		}
	}
}

func TestCopyConfigMap(t *testing.T) {
	src := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: "app-config", Namespace: "ns", UID: "u", ResourceVersion: "42",
			Labels:          map[string]string{"app": "web"},
			Annotations:     map[string]string{"note": "x"},
			OwnerReferences: []metav1.OwnerReference{{Name: "owner"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": {1, 2}},
	}
	before := src.DeepCopy()
	labels := map[string]string{"sluice.io/copy": "true"}
	annotations := map[string]string{"sluice.io/source": "app-config"}
	obj, err := configcopy.Copy(src, "app-config-0123456789", labels, annotations)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := obj.(*corev1.ConfigMap)
	if !ok {
		t.Fatalf("Copy returned a %T", obj)
	}
	want := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "app-config-0123456789", Namespace: "ns",
			Labels: map[string]string{"sluice.io/copy": "true"}, Annotations: map[string]string{"sluice.io/source": "app-config"}},
		Data:       map[string]string{"a": "1"},
		BinaryData: map[string][]byte{"b": {1, 2}},
		Immutable:  ptr.To(true),
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("Copy:\n got %+v\nwant %+v", got, want)
	}
	if a, b := mustHash(t, src, "s"), mustHash(t, got, "s"); a != b {
		t.Errorf("the copy's content hash %s differs from the source's %s", b, a)
	}

	got.Data["a"] = "changed"
	got.BinaryData["b"][0] = 9
	got.Labels["x"] = "y"
	got.Annotations["x"] = "y"
	if !equality.Semantic.DeepEqual(src, before) {
		t.Error("mutating the copy changed the source")
	}
	if len(labels) != 1 || len(annotations) != 1 {
		t.Error("mutating the copy changed the given labels or annotations")
	}
}

func TestCopySecret(t *testing.T) {
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "u", ResourceVersion: "42",
			Labels: map[string]string{"app": "web"}},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"username": []byte("u"), "password": []byte("p")},
		StringData: map[string]string{"never": "stored"},
	}
	before := src.DeepCopy()
	obj, err := configcopy.Copy(src, "db-0123456789", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := obj.(*corev1.Secret)
	if !ok {
		t.Fatalf("Copy returned a %T", obj)
	}
	want := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "db-0123456789", Namespace: "ns"},
		Type:       corev1.SecretTypeBasicAuth,
		Data:       map[string][]byte{"username": []byte("u"), "password": []byte("p")},
		Immutable:  ptr.To(true),
	}
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("Copy:\n got %+v\nwant %+v", got, want)
	}
	got.Data["password"][0] = 'X'
	got.Data["new"] = nil
	if !equality.Semantic.DeepEqual(src, before) {
		t.Error("mutating the copy changed the source")
	}
}

func TestCopyRejectsOtherTypes(t *testing.T) {
	for _, obj := range []client.Object{&corev1.Pod{}, (*corev1.ConfigMap)(nil), (*corev1.Secret)(nil)} {
		if got, err := configcopy.Copy(obj, "x", nil, nil); err == nil {
			t.Errorf("Copy(%T) = %v, want an error", obj, got)
		}
	}
}

// benchTemplate has 20 references: 10 ConfigMaps and 10 Secrets over env, envFrom and volumes.
func benchTemplate() (*corev1.PodTemplateSpec, map[string]string) {
	t := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	c := &t.Spec.Containers[0]
	copies := map[string]string{}
	for i := range 5 {
		cmName, sName := fmt.Sprintf("config-%d", i), fmt.Sprintf("secret-%d", i)
		c.Env = append(c.Env, cmKeyEnv(cmName, nil), secretKeyEnv(sName, nil))
		vcm, vs := fmt.Sprintf("vol-config-%d", i), fmt.Sprintf("vol-secret-%d", i)
		t.Spec.Volumes = append(t.Spec.Volumes, cmVolume(vcm, nil), secretVolume(vs, nil))
		for _, r := range []string{configcopy.Key("ConfigMap", cmName), configcopy.Key("Secret", sName),
			configcopy.Key("ConfigMap", vcm), configcopy.Key("Secret", vs)} {
			copies[r] = r[strings.IndexByte(r, '/')+1:] + "-0123456789"
		}
	}
	return t, copies
}

func BenchmarkRewrite(b *testing.B) {
	t, copies := benchTemplate()
	if n := len(configcopy.Refs(t)); n != 20 {
		b.Fatalf("template has %d references, want 20", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		out := configcopy.Rewrite(t, copies)
		if len(configcopy.Refs(out)) != 20 {
			b.Fatal("lost references")
		}
	}
}
