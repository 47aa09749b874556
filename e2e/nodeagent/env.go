package nodeagent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

// configErrorReason is the waiting reason of a container whose environment can't be resolved
// (a required ConfigMap, Secret or key is missing): the kubelet's.
const configErrorReason = "CreateContainerConfigError"

const (
	// configRetry is how often a container in configErrorReason tries again (the kubelet: about
	// 10 s), so that a test creating the missing object sees the pod start soon after.
	configRetry = time.Second
	// envReadTimeout bounds the reads of one start, so an API server that hangs can't.
	envReadTimeout = 5 * time.Second
)

const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

// fieldPaths are the fieldRef paths the agent resolves, with their value for a runtime.
var fieldPaths = map[string]func(rt *podRuntime) string{
	"metadata.name":           func(rt *podRuntime) string { return rt.pod.Name },
	"metadata.namespace":      func(rt *podRuntime) string { return rt.pod.Namespace },
	"metadata.uid":            func(rt *podRuntime) string { return string(rt.pod.UID) },
	"spec.nodeName":           func(rt *podRuntime) string { return rt.a.opts.NodeName },
	"spec.serviceAccountName": func(rt *podRuntime) string { return rt.pod.Spec.ServiceAccountName },
	"status.hostIP":           func(rt *podRuntime) string { return rt.a.opts.NodeIP },
	"status.podIP":            func(rt *podRuntime) string { return rt.ip },
}

// unsupportedEnv says why the agent can't resolve an env entry, "" when it can. Checked at
// admission: what is refused there makes the pod Failed instead of waiting for ever.
func unsupportedEnv(e corev1.EnvVar) string {
	src := e.ValueFrom
	switch {
	case src == nil, src.ConfigMapKeyRef != nil, src.SecretKeyRef != nil:
		return ""
	case src.FieldRef != nil:
		if _, ok := fieldPaths[src.FieldRef.FieldPath]; ok {
			return ""
		}
		return fmt.Sprintf("fieldRef %s is not supported", src.FieldRef.FieldPath)
	}
	return "only value, fieldRef, configMapKeyRef and secretKeyRef are supported"
}

// envObjects reads the ConfigMaps and Secrets of the pod's namespace that a container refers
// to. A missing object must give an error that apierrors.IsNotFound recognizes.
type envObjects struct {
	configMap func(name string) (*corev1.ConfigMap, error)
	secret    func(name string) (*corev1.Secret, error)
}

// apiEnvObjects reads from the API server, uncached: each start sees the objects as they are.
func (a *Agent) apiEnvObjects(ctx context.Context, ns string) envObjects {
	return envObjects{
		configMap: func(name string) (*corev1.ConfigMap, error) {
			return a.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		},
		secret: func(name string) (*corev1.Secret, error) {
			return a.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		},
	}
}

// resolveEnv returns a container's variables as NAME=value: envFrom's first, then env's, so
// env wins over envFrom (the last duplicate wins when the process starts). Objects are only
// read when referred to. skipped lists envFrom keys that are not variable names. err names
// the missing required object or key; it never holds a value.
func resolveEnv(ns string, c *corev1.Container, objects envObjects, field func(path string) string) (vars, skipped []string, err error) {
	r := &envResolver{ns: ns, objects: objects, field: field, data: map[string]map[string]string{}}
	for _, f := range c.EnvFrom {
		kv, err := r.fromSource(f)
		if err != nil {
			return nil, nil, err
		}
		vars = append(vars, kv...)
	}
	for _, e := range c.Env {
		v, set, err := r.value(e)
		if err != nil {
			return nil, nil, err
		}
		if set {
			vars = append(vars, e.Name+"="+v)
		}
	}
	return vars, r.skipped, nil
}

// envResolver resolves one container's environment for one start. It reads each object once,
// so all the variables taken from an object come from one version of it.
type envResolver struct {
	ns      string
	objects envObjects
	field   func(path string) string
	data    map[string]map[string]string // by kind/name; a nil map: the object is missing
	skipped []string
}

// fromSource lists an envFrom source's variables, keys sorted so every start gets the same
// environment. A missing optional object gives none.
func (r *envResolver) fromSource(f corev1.EnvFromSource) ([]string, error) {
	var kind, name string
	var optional bool
	switch {
	case f.ConfigMapRef != nil:
		kind, name, optional = kindConfigMap, f.ConfigMapRef.Name, ptr.Deref(f.ConfigMapRef.Optional, false)
	case f.SecretRef != nil:
		kind, name, optional = kindSecret, f.SecretRef.Name, ptr.Deref(f.SecretRef.Optional, false)
	default:
		return nil, nil // the API server requires one of them
	}
	data, err := r.object(kind, name)
	if err != nil {
		return nil, err
	}
	if data == nil {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("couldn't find %s %s/%s (envFrom)", kind, r.ns, name)
	}
	var vars []string
	for _, k := range slices.Sorted(maps.Keys(data)) {
		// The kubelet sets every key now: with RelaxedEnvironmentVariableValidation the API
		// server only accepts keys and prefixes that make valid names. Skip any other rather
		// than give the process a name holding "=".
		if len(validation.IsRelaxedEnvVarName(f.Prefix+k)) > 0 {
			r.skipped = append(r.skipped, fmt.Sprintf("%q from %s %s/%s", f.Prefix+k, kind, r.ns, name))
			continue
		}
		vars = append(vars, f.Prefix+k+"="+data[k])
	}
	return vars, nil
}

// value resolves one env entry; set is false when an optional reference is missing, which
// leaves the variable unset.
func (r *envResolver) value(e corev1.EnvVar) (v string, set bool, err error) {
	src := e.ValueFrom
	switch {
	case src == nil:
		return e.Value, true, nil
	case src.FieldRef != nil:
		return r.field(src.FieldRef.FieldPath), true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		return r.key(kindConfigMap, ref.Name, ref.Key, ptr.Deref(ref.Optional, false), e.Name)
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		return r.key(kindSecret, ref.Name, ref.Key, ptr.Deref(ref.Optional, false), e.Name)
	}
	return "", false, fmt.Errorf("env %s: %s", e.Name, unsupportedEnv(e)) // admission refuses it first
}

// key looks up one key of a ConfigMap or Secret for the variable env.
func (r *envResolver) key(kind, name, key string, optional bool, env string) (string, bool, error) {
	data, err := r.object(kind, name)
	if err != nil {
		return "", false, err
	}
	v, ok := data[key]
	switch {
	case ok:
		return v, true, nil
	case optional:
		return "", false, nil
	case data == nil:
		return "", false, fmt.Errorf("couldn't find %s %s/%s (env %s, key %s)", kind, r.ns, name, env, key)
	}
	return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s (env %s)", key, kind, r.ns, name, env)
}

// object returns a ConfigMap's or a Secret's data, nil when the object is missing. Other read
// errors fail the start, optional or not, as in the kubelet.
func (r *envResolver) object(kind, name string) (map[string]string, error) {
	id := kind + "/" + name
	if data, ok := r.data[id]; ok {
		return data, nil
	}
	data, err := r.fetch(kind, name)
	if apierrors.IsNotFound(err) {
		data, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read %s %s/%s: %w", kind, r.ns, name, err)
	}
	r.data[id] = data
	return data, nil
}

// fetch reads an object's data into a non-nil map: a ConfigMap's data (not binaryData, like
// the kubelet), a Secret's bytes as they are.
func (r *envResolver) fetch(kind, name string) (map[string]string, error) {
	data := map[string]string{}
	if kind == kindConfigMap {
		cm, err := r.objects.configMap(name)
		if err != nil {
			return nil, err
		}
		maps.Copy(data, cm.Data)
		return data, nil
	}
	s, err := r.objects.secret(name)
	if err != nil {
		return nil, err
	}
	for k, v := range s.Data {
		data[k] = string(v)
	}
	return data, nil
}
