package controllers_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

// TestMain starts the real API server once, with the Gateway API (standard), Traefik and
// Linkerd CRDs, and the MeshPolicy controller in a manager; the Rollout and HealthGate tests
// start managers of their own. No Istio or Consul CRDs: provider auto picks linkerd here, and
// an explicit istio is a provider not installed.
func TestMain(m *testing.M) {
	var extra []string
	for _, crds := range []func() (string, error){testenv.TraefikCRDs, testenv.LinkerdCRDs} {
		path, err := crds()
		if err != nil {
			testenv.Fatal(err)
		}
		extra = append(extra, path)
	}
	opts := testenv.Options{GatewayAPI: true, ExtraCRDPaths: extra, AfterTests: checkRBAC}
	testenv.Main(m, opts, &env, func(e *testenv.Env) (func(), error) {
		cfg, err := e.ManagerConfig()
		if err != nil {
			return nil, err
		}
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Cache: controllers.CacheOptions()})
		if err != nil {
			return nil, err
		}
		if err := controllers.SetupMeshPolicyController(mgr, controllers.MeshPolicyOptions{}); err != nil {
			return nil, err
		}
		stop := testenv.RunManager(mgr)
		return func() { _ = stop() }, nil
	})
}

// managerConfig is the config every test manager runs with: the generated ClusterRole only,
// its requests recorded for checkRBAC.
func managerConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := env.ManagerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// unusedGrants are the grants no controller test exercises, each with why it stays.
var unusedGrants = map[testenv.Call]string{
	{Verb: "update", Group: "mesh.sluice.dev", Resource: "rollouts/finalizers"}:     "owner references with blockOwnerDeletion to a Rollout need it where OwnerReferencesPermissionEnforcement is on (not in the test API server)",
	{Verb: "update", Group: "mesh.sluice.dev", Resource: "meshpolicies/finalizers"}: "the same for a MeshPolicy's outputs",
	{Verb: "get", Group: "mesh.sluice.dev", Resource: "healthgates"}:                "the Rollout webhook checks that a named HealthGate exists (webhooks tests, under this role)",
	{Verb: "patch", Group: "events.k8s.io", Resource: "events"}:                     "the event recorder patches a repeated event's count, when one repeats within its window",
	{Verb: "get", Group: "", Resource: "namespaces"}:                                "the policy webhook reads namespace labels (webhooks tests, under this role)",
	{Verb: "list", Group: "", Resource: "namespaces"}:                               "the policy webhook's metadata cache and the audit (webhooks tests)",
	{Verb: "watch", Group: "", Resource: "namespaces"}:                              "the policy webhook's metadata cache (webhooks tests)",
}

// meshOutputs are the kinds the MeshPolicy providers write: one generic code path applies,
// reads and prunes them all (controllers/meshpolicy_apply.go), so a verb used on one is used
// on each; the tests install only some of the meshes.
func meshOutputs() []testenv.Call {
	role, err := testenv.GeneratedClusterRole()
	if err != nil {
		return nil
	}
	groups := map[string]bool{}
	for _, p := range providers.All() {
		for _, k := range p.Kinds() {
			if k.Group != "" && k.Group != "gateway.networking.k8s.io" {
				groups[k.Group] = true
			}
		}
	}
	var out []testenv.Call
	for _, g := range testenv.Grants(role.Rules) {
		if groups[g.Group] {
			out = append(out, g)
		}
	}
	return out
}

// checkRBAC holds the generated ClusterRole to the calls the managers made in a full run of the
// package: nothing refused, nothing granted that no call needed.
func checkRBAC() error {
	if f := flag.Lookup("test.run"); f == nil || f.Value.String() != "" || testing.Short() {
		return nil // a partial run uses only part of the role
	}
	problems, err := testenv.RBACReport(unusedGrants, meshOutputs())
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("the generated RBAC (config/rbac/role.yaml) and the calls the controllers made differ:\n  %s\ncalls made: %v", strings.Join(problems, "\n  "), testenv.Calls.All())
	}
	return nil
}
