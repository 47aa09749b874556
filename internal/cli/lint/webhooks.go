package lint

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/webhooks"
)

// validatingHooks are Sluice's validating webhooks as the manager registers them
// (webhooks.Setup), by kind, with their reference checks reading the linted files.
type validatingHooks map[string]*admission.Webhook

// newValidatingHooks registers the webhooks on a stand-in manager that only records them:
// lint calls each with the AdmissionRequest the API server would send, so the same decoding
// and checks run.
func newValidatingHooks(files client.Reader) (validatingHooks, error) {
	m := &recordingManager{scheme: scheme.New(), reader: files, server: &recordingServer{hooks: map[string]http.Handler{}, mux: http.NewServeMux()}}
	// nil: the cluster's egress allow-list is not known offline.
	if err := webhooks.Setup(m, nil); err != nil {
		return nil, fmt.Errorf("registering the webhooks: %w", err)
	}
	out := validatingHooks{}
	for _, kind := range []string{"Rollout", "HealthGate", "MeshPolicy"} {
		path := "/validate-" + strings.ReplaceAll(meshv1alpha1.GroupVersion.Group, ".", "-") + "-" + meshv1alpha1.GroupVersion.Version + "-" + strings.ToLower(kind)
		h, ok := m.server.hooks[path].(*admission.Webhook)
		if !ok {
			return nil, fmt.Errorf("no validating webhook for %s registered at %s", kind, path)
		}
		out[kind] = h
	}
	return out, nil
}

// review sends obj to the kind's webhook as a create; it returns the refusal (if any) and the
// warnings.
func (v validatingHooks) review(ctx context.Context, obj map[string]any) (denied string, warnings []string, err error) {
	kind, _ := obj["kind"].(string)
	h, ok := v[kind]
	if !ok {
		return "", nil, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return "", nil, err
	}
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	gvk := meshv1alpha1.GroupVersion.WithKind(kind)
	resp := h.Handle(ctx, admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "lint", Kind: metaGVK(gvk), Name: name, Namespace: ns, Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed {
		msg := "refused"
		if resp.Result != nil && resp.Result.Message != "" {
			msg = resp.Result.Message
		}
		return msg, resp.Warnings, nil
	}
	return "", resp.Warnings, nil
}

func metaGVK(gvk schema.GroupVersionKind) metav1.GroupVersionKind {
	return metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
}

// recordingManager is what webhooks.Setup and controller-runtime's webhook builder use of a
// manager; anything else would panic (nil embedded interface), which a test would catch.
type recordingManager struct {
	manager.Manager
	scheme *runtime.Scheme
	reader client.Reader
	server *recordingServer
}

func (m *recordingManager) GetScheme() *runtime.Scheme       { return m.scheme }
func (m *recordingManager) GetAPIReader() client.Reader      { return m.reader }
func (m *recordingManager) GetConfig() *rest.Config          { return &rest.Config{} }
func (m *recordingManager) GetWebhookServer() webhook.Server { return m.server }

// recordingServer keeps the handlers registered with it; it serves nothing.
type recordingServer struct {
	hooks map[string]http.Handler
	mux   *http.ServeMux
}

func (s *recordingServer) NeedLeaderElection() bool { return false }
func (s *recordingServer) Register(path string, hook http.Handler) {
	s.hooks[path] = hook
	s.mux.Handle(path, hook)
}
func (s *recordingServer) Start(context.Context) error { return nil }
func (s *recordingServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error { return nil }
}
func (s *recordingServer) WebhookMux() *http.ServeMux { return s.mux }

// filesReader answers the webhooks' reference checks from the linted files. A kind that none
// of the files has in a namespace is taken to exist there (the files are not the whole
// cluster: a Deployment kept elsewhere must not be reported missing); a kind the files have
// there but not under that name is reported missing.
type filesReader struct {
	// objects by "Kind namespace/name"; kinds by "Kind namespace".
	objects map[string]map[string]any
	kinds   map[string]bool
}

func newFilesReader(ms []sluiceadmission.Manifest, defaultNamespace string) *filesReader {
	r := &filesReader{objects: map[string]map[string]any{}, kinds: map[string]bool{}}
	for _, m := range ms {
		kind, _ := m.Object["kind"].(string)
		md, _ := m.Object["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		ns, _ := md["namespace"].(string)
		if ns == "" {
			ns = defaultNamespace
		}
		r.objects[kind+" "+ns+"/"+name] = m.Object
		r.kinds[kind+" "+ns] = true
	}
	return r
}

func (r *filesReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	if _, ok := r.objects[gvk.Kind+" "+key.Namespace+"/"+key.Name]; ok || !r.kinds[gvk.Kind+" "+key.Namespace] {
		obj.SetName(key.Name)
		obj.SetNamespace(key.Namespace)
		return nil
	}
	return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
}

// List lists the MeshPolicies among the files (the only list the webhooks make).
func (r *filesReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	mp, ok := list.(*meshv1alpha1.MeshPolicyList)
	if !ok {
		return fmt.Errorf("lint: listing %T is not supported", list)
	}
	lo := &client.ListOptions{}
	lo.ApplyOptions(opts)
	for key, obj := range r.objects {
		if !strings.HasPrefix(key, "MeshPolicy "+lo.Namespace+"/") {
			continue
		}
		var p meshv1alpha1.MeshPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &p); err != nil {
			continue // reported by the schema check
		}
		mp.Items = append(mp.Items, p)
	}
	return nil
}
