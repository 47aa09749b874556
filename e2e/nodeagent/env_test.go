package nodeagent

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// fakeObjects serves the given objects by name, counts reads by kind/name, and fails reads of
// objects named "broken" the way an unreachable API server would.
type fakeObjects struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	reads      map[string]int
}

func (f *fakeObjects) getters() envObjects {
	f.reads = map[string]int{}
	return envObjects{
		configMap: func(name string) (*corev1.ConfigMap, error) {
			f.reads[kindConfigMap+"/"+name]++
			if name == "broken" {
				return nil, errors.New("connection refused")
			}
			if cm, ok := f.configMaps[name]; ok {
				return cm, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
		},
		secret: func(name string) (*corev1.Secret, error) {
			f.reads[kindSecret+"/"+name]++
			if s, ok := f.secrets[name]; ok {
				return s, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
		},
	}
}

func testObjects() *fakeObjects {
	return &fakeObjects{
		configMaps: map[string]*corev1.ConfigMap{
			"app": {
				Data:       map[string]string{"version": "v2", "b": "2", "a": "1", "x=y": "3", "1st": "one"},
				BinaryData: map[string][]byte{"blob": []byte("bin")},
			},
			"empty": {},
		},
		secrets: map[string]*corev1.Secret{
			"db": {Data: map[string][]byte{"password": []byte("s3cret\xff\n"), "a": []byte("from-secret")}},
		},
	}
}

func cmKey(name, key string, optional bool) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(optional)}}
}

func secretKey(name, key string, optional bool) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(optional)}}
}

func cmFrom(name, prefix string, optional bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr.To(optional)}}
}

func secretFrom(name, prefix string, optional bool) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, SecretRef: &corev1.SecretEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr.To(optional)}}
}

func TestResolveEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     []corev1.EnvVar
		envFrom []corev1.EnvFromSource
		want    []string
		skipped []string
		err     string // a part of the error; "" for none
	}{{
		name: "value and fieldRef, in order",
		env: []corev1.EnvVar{
			{Name: "A", Value: "1"},
			{Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "C"},
		},
		want: []string{"A=1", "B=field:metadata.name", "C="},
	}, {
		name: "configMapKeyRef",
		env:  []corev1.EnvVar{{Name: "VERSION", ValueFrom: cmKey("app", "version", false)}},
		want: []string{"VERSION=v2"},
	}, {
		name: "secretKeyRef bytes as they are",
		env:  []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: secretKey("db", "password", false)}},
		want: []string{"PASSWORD=s3cret\xff\n"},
	}, {
		name: "optional missing object or key leaves the variable unset",
		env: []corev1.EnvVar{
			{Name: "A", ValueFrom: cmKey("nope", "a", true)},
			{Name: "B", ValueFrom: cmKey("app", "nope", true)},
			{Name: "C", ValueFrom: secretKey("nope", "c", true)},
			{Name: "D", ValueFrom: secretKey("db", "nope", true)},
			{Name: "E", Value: "e"},
		},
		want: []string{"E=e"},
	}, {
		name: "required missing ConfigMap",
		env:  []corev1.EnvVar{{Name: "VERSION", ValueFrom: cmKey("nope", "version", false)}},
		err:  "couldn't find ConfigMap ns1/nope (env VERSION, key version)",
	}, {
		name: "required missing ConfigMap key",
		env:  []corev1.EnvVar{{Name: "VERSION", ValueFrom: cmKey("app", "nope", false)}},
		err:  "couldn't find key nope in ConfigMap ns1/app (env VERSION)",
	}, {
		name: "required missing Secret",
		env:  []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: secretKey("nope", "password", false)}},
		err:  "couldn't find Secret ns1/nope (env PASSWORD, key password)",
	}, {
		name: "required missing Secret key",
		env:  []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: secretKey("db", "nope", false)}},
		err:  "couldn't find key nope in Secret ns1/db (env PASSWORD)",
	}, {
		name: "a ConfigMap's binaryData is not data",
		env:  []corev1.EnvVar{{Name: "BLOB", ValueFrom: cmKey("app", "blob", false)}},
		err:  "couldn't find key blob in ConfigMap ns1/app",
	}, {
		name: "a read error fails the start even when optional",
		env:  []corev1.EnvVar{{Name: "A", ValueFrom: cmKey("broken", "a", true)}},
		err:  "couldn't read ConfigMap ns1/broken: connection refused",
	}, {
		name:    "envFrom with a prefix: keys sorted, names with = skipped",
		envFrom: []corev1.EnvFromSource{cmFrom("app", "P_", false)},
		want:    []string{"P_1st=one", "P_a=1", "P_b=2", "P_version=v2"},
		skipped: []string{`"P_x=y" from ConfigMap ns1/app`},
	}, {
		name:    "envFrom without a prefix: a leading digit is a valid name (relaxed names)",
		envFrom: []corev1.EnvFromSource{secretFrom("db", "", false)},
		want:    []string{"a=from-secret", "password=s3cret\xff\n"},
	}, {
		name:    "envFrom: env wins over envFrom, a later source over an earlier one (the last duplicate wins)",
		envFrom: []corev1.EnvFromSource{cmFrom("app", "", false), secretFrom("db", "", false)},
		env:     []corev1.EnvVar{{Name: "b", Value: "explicit"}},
		want:    []string{"1st=one", "a=1", "b=2", "version=v2", "a=from-secret", "password=s3cret\xff\n", "b=explicit"},
		skipped: []string{`"x=y" from ConfigMap ns1/app`},
	}, {
		name:    "envFrom: missing optional objects give nothing, an empty one too",
		envFrom: []corev1.EnvFromSource{cmFrom("nope", "", true), secretFrom("nope", "", true), cmFrom("empty", "", false)},
	}, {
		name:    "envFrom: required missing ConfigMap",
		envFrom: []corev1.EnvFromSource{cmFrom("nope", "", false)},
		err:     "couldn't find ConfigMap ns1/nope (envFrom)",
	}, {
		name:    "envFrom: required missing Secret",
		envFrom: []corev1.EnvFromSource{secretFrom("nope", "X_", false)},
		err:     "couldn't find Secret ns1/nope (envFrom)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objects := testObjects()
			c := &corev1.Container{Env: tt.env, EnvFrom: tt.envFrom}
			vars, skipped, err := resolveEnv("ns1", c, objects.getters(), func(path string) string { return "field:" + path })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q holds a Secret value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(vars, tt.want) {
				t.Errorf("vars %q, want %q", vars, tt.want)
			}
			if !slices.Equal(skipped, tt.skipped) {
				t.Errorf("skipped %q, want %q", skipped, tt.skipped)
			}
		})
	}
}

// One start reads each object once, so its variables come from one version of it, and reads
// nothing for a container that refers to no object.
func TestResolveEnvReadsEachObjectOnce(t *testing.T) {
	tests := []struct {
		name  string
		c     corev1.Container
		reads map[string]int
	}{{
		name:  "no references, no reads",
		c:     corev1.Container{Env: []corev1.EnvVar{{Name: "A", Value: "1"}}},
		reads: map[string]int{},
	}, {
		name: "one read per object, found or optional and missing",
		c: corev1.Container{
			EnvFrom: []corev1.EnvFromSource{cmFrom("app", "", false), cmFrom("nope", "", true)},
			Env: []corev1.EnvVar{
				{Name: "A", ValueFrom: cmKey("app", "a", false)},
				{Name: "B", ValueFrom: cmKey("app", "b", false)},
				{Name: "C", ValueFrom: cmKey("nope", "c", true)},
				{Name: "D", ValueFrom: secretKey("db", "a", false)},
				{Name: "E", ValueFrom: secretKey("db", "password", false)},
			},
		},
		reads: map[string]int{"ConfigMap/app": 1, "ConfigMap/nope": 1, "Secret/db": 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objects := testObjects()
			if _, _, err := resolveEnv("ns1", &tt.c, objects.getters(), func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			if len(objects.reads) != len(tt.reads) {
				t.Errorf("reads %v, want %v", objects.reads, tt.reads)
			}
			for id, n := range tt.reads {
				if objects.reads[id] != n {
					t.Errorf("reads %v, want %v", objects.reads, tt.reads)
				}
			}
		})
	}
}

// Admission accepts what resolveEnv can resolve, ignores volumes, and refuses the rest.
func TestContainerSpecEnvSupport(t *testing.T) {
	tests := []struct {
		name    string
		env     corev1.EnvVar
		envFrom []corev1.EnvFromSource
		volumes []corev1.Volume
		want    string // the reason, "" when admitted
	}{
		{name: "value", env: corev1.EnvVar{Name: "A", Value: "1"}},
		{name: "configMapKeyRef", env: corev1.EnvVar{Name: "A", ValueFrom: cmKey("app", "a", false)}},
		{name: "secretKeyRef", env: corev1.EnvVar{Name: "A", ValueFrom: secretKey("db", "a", false)}},
		{name: "envFrom", env: corev1.EnvVar{Name: "A"}, envFrom: []corev1.EnvFromSource{cmFrom("app", "P_", false), secretFrom("db", "", true)}},
		{name: "fieldRef", env: corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
		{
			name: "configMap and secret volumes are ignored",
			env:  corev1.EnvVar{Name: "A"},
			volumes: []corev1.Volume{
				{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
				{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}},
			},
		},
		{name: "fieldRef to labels", env: corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}, want: "Unsupported"},
		{name: "resourceFieldRef", env: corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}, want: "Unsupported"},
		{name: "fileKeyRef", env: corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{VolumeName: "v", Path: "p", Key: "k"}}}, want: "Unsupported"},
	}
	a := &Agent{opts: Options{Images: map[string]string{"sluice.dev/demo-app": "/bin/demo-app"}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1"},
				Spec: corev1.PodSpec{Volumes: tt.volumes, Containers: []corev1.Container{{
					Name: "app", Image: "sluice.dev/demo-app:v1", Env: []corev1.EnvVar{tt.env}, EnvFrom: tt.envFrom,
				}}},
			}
			_, reason, msg := a.containerSpec(pod)
			if reason != tt.want {
				t.Errorf("reason %q (%s), want %q", reason, msg, tt.want)
			}
		})
	}
}
