package gatewayapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// k8s talks to the test API server; its scheme has gateway.networking.k8s.io/v1.
var k8s client.WithWatch

// env is the test API server, with the Gateway API CRDs (its scheme has them too).
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{GatewayAPI: true}, &env, func(e *testenv.Env) (func(), error) {
		var err error
		k8s, err = client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
		return func() {}, err
	})
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gw-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// generatedSplit is a 90/10 split on a generated route with a Gateway and a GAMMA parent.
func generatedSplit(ns string) traffic.Split {
	return traffic.Split{
		Namespace: ns,
		OwnerName: "checkout",
		OwnerUID:  types.UID("rollout-uid-" + ns), // stable per test: the owner check compares it
		Generated: &traffic.GeneratedRoute{
			Name: "checkout",
			ParentRefs: []meshv1alpha1.ParentReference{
				{Name: "edge", Namespace: "gateways", SectionName: "https"},
				{Group: ptr.To(""), Kind: "Service", Name: "checkout"},
			},
			Hostnames: []meshv1alpha1.Hostname{"shop.example.com"},
		},
		ApexService: "checkout",
		Port:        80,
		Stable:      traffic.Backend{Service: "checkout-a", Weight: 90},
		Canary:      traffic.Backend{Service: "checkout-b", Weight: 10},
	}
}

// existingSplit drives the user's route "checkout" (apex Service checkout) 80/20.
func existingSplit(ns string) traffic.Split {
	return traffic.Split{
		Namespace:   ns,
		Existing:    "checkout",
		ApexService: "checkout",
		Port:        80,
		Stable:      traffic.Backend{Service: "checkout-a", Weight: 80},
		Canary:      traffic.Backend{Service: "checkout-b", Weight: 20},
	}
}

// routeName is the route every test of this package works on (in its own namespace).
const routeName = "checkout"

func getRoute(t *testing.T, ns string) *gwv1.HTTPRoute {
	t.Helper()
	name := routeName
	rt := &gwv1.HTTPRoute{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rt); err != nil {
		t.Fatalf("reading HTTPRoute %s/%s: %v", ns, name, err)
	}
	return rt
}

func getUnstructured(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	name := routeName
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(routerules.RouteGVK)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		t.Fatalf("reading HTTPRoute %s/%s: %v", ns, name, err)
	}
	return u
}

// yamlInto reads a manifest the way kubectl would (integers stay int64).
func yamlInto(manifest string, u *unstructured.Unstructured) error {
	data, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		return err
	}
	return u.UnmarshalJSON(data)
}

// mustJSON is v as indented JSON, for exact comparisons with a readable failure.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("encoding: %v", err)
	}
	return string(data)
}

func assertSameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, w := mustJSON(t, got), mustJSON(t, want)
	if g != w {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", what, g, w)
	}
}

func assertContains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not contain %q", what, s, p)
		}
	}
}
