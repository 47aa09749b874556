package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/internal/probe"
	splits "github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// The probe protocol's assumptions, checked against the real Traefik with the probe rule the
// router writes (Router.Apply with Split.Probe, on a generated route): the probe rule (exact
// path and the token header) wins over the route's catch-all rule for that path, only requests
// with the token reach it, its ResponseHeaderModifier marks every answer including Traefik's
// own errors, and Traefik answers 503 for a backend with no ready endpoint and 500 for one
// without EndpointSlices; once the rule points at serving pods, the probe proves it.
func TestProbeRuleThroughTraefik(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "probe")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(80)
	svc := func(name string, selector map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: port, TargetPort: intstr.FromString("http")}},
		}}
	}
	objs := []client.Object{
		cluster.DemoApp(ns, "v1"),
		svc("serving", map[string]string{"app": "shop"}),    // the stable slot
		svc("canary", map[string]string{"app": "shop"}),     // the canary slot, at weight 0
		svc("no-pods", map[string]string{"app": "nothing"}), // an EndpointSlice without endpoints
		svc("no-slices", nil),                               // no selector: no EndpointSlice at all
	}
	for _, o := range objs {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	host := cluster.DemoHost(ns)
	token := probe.Token("uid-of-a-rollout", "rev1", "b")
	router := gatewayapi.New(cl.Client)
	split := splits.Split{
		Namespace: ns, OwnerName: "shop", OwnerUID: "uid-of-a-rollout",
		Generated: &splits.GeneratedRoute{
			Name:       "shop",
			ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}},
			Hostnames:  []meshv1alpha1.Hostname{meshv1alpha1.Hostname(host)},
		},
		ApexService: "serving", Port: port,
		Stable: splits.Backend{Service: "serving", Weight: 100},
		Canary: splits.Backend{Service: "canary", Weight: 0},
		Probe:  &splits.ProbeRule{Service: "no-pods", Path: "/readyz", Token: token},
	}
	applyProbe(t, router, split)
	targets, unprobeable, err := router.ProbeTargets(ctx, split, "")
	if err != nil || len(targets) != 1 {
		t.Fatalf("ProbeTargets = %+v, %q, %v: want the Gateway's", targets, unprobeable, err)
	}
	target := targets[0]
	t.Logf("probe target %+v", target)
	prober := &probe.HTTPProber{}
	req := probe.Request{Targets: targets, Path: "/readyz", Token: token, Interval: 50 * time.Millisecond}

	// The route serves v1 without the token: the probe rule takes only what carries it.
	waitAnswer(t, target, "/readyz", func(code int, h http.Header) bool { return code == http.StatusOK && h.Get(probe.AnswerHeader) == "" })
	// No ready endpoint: Traefik's own 503, marked by the rule.
	waitProbeStatus(t, prober, req, http.StatusServiceUnavailable)

	// No EndpointSlice: Traefik cannot resolve the backend and answers 500, marked.
	split.Probe.Service = "no-slices"
	applyProbe(t, router, split)
	waitProbeStatus(t, prober, req, http.StatusInternalServerError)

	// The canary's serving pods: the probe proves it.
	updated := time.Now()
	split.Probe.Service = "canary"
	applyProbe(t, router, split)
	res := probeFor(t, prober, req, 10*time.Second)
	if !res.OK || res.Status != http.StatusOK {
		t.Fatalf("a serving Service: %+v", res)
	}
	t.Logf("proven %s after the route update: %s", time.Since(updated).Round(time.Millisecond), res.Message)

	// A split version written with the rule shows when Traefik serves that version of the
	// route, which its status claims earlier.
	for i := range 3 {
		req.Split = probe.Version(fmt.Sprint("split ", i))
		split.Probe.Split = req.Split
		gen, wrote := applyProbe(t, router, split)
		accepted := acceptedAt(ns, gen)
		res = probeFor(t, prober, req, 10*time.Second)
		served := time.Now()
		if !res.OK {
			t.Fatalf("split %d: %+v", i, res)
		}
		acc := <-accepted
		t.Logf("split %d: route generation %d Accepted %s after the write, served %s after the write (%s after Accepted)",
			i, gen, acc.Sub(wrote).Round(time.Millisecond), served.Sub(wrote).Round(time.Millisecond), served.Sub(acc).Round(time.Millisecond))
	}

	// Another release's token does not go through this rule.
	other := req
	other.Token = probe.Token("uid-of-a-rollout", "rev2", "b")
	if res := probeFor(t, prober, other, 300*time.Millisecond); res.OK || res.Status != http.StatusOK || !strings.Contains(res.Message, "without the probe rule") {
		t.Errorf("another token: %+v", res)
	}

	// Without a probe the router removes the rule: a request with the token gets the route's
	// catch-all answer, unmarked.
	split.Probe = nil
	applyProbe(t, router, split)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		res = probeFor(t, prober, req, 300*time.Millisecond)
		return !res.OK && res.Status == http.StatusOK && strings.Contains(res.Message, "without the probe rule"), nil
	})
	if err != nil {
		t.Errorf("after the probe rule's removal: %+v", res)
	}
}

func probeFor(t *testing.T, p probe.Prober, req probe.Request, budget time.Duration) probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	return p.Probe(ctx, req)
}

// waitProbeStatus waits until a probe's last answer has status code (the route was updated).
func waitProbeStatus(t *testing.T, p probe.Prober, req probe.Request, code int) {
	t.Helper()
	var res probe.Result
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		res = probeFor(t, p, req, 500*time.Millisecond)
		return res.Status == code, nil
	})
	if err != nil || res.OK || !strings.Contains(res.Message, "the proxy cannot reach the slot") {
		t.Fatalf("waiting for a %d through the probe rule: %+v", code, res)
	}
}

// applyProbe applies the split with the router and checks that Observe reads its probe rule
// back; it returns the route's generation and when it was written.
func applyProbe(t *testing.T, r *gatewayapi.Router, s splits.Split) (int64, time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wrote := time.Now()
	st, err := r.Observe(ctx, s)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if (st.Probe == nil) != (s.Probe == nil) || (s.Probe != nil && *st.Probe != *s.Probe) {
		t.Fatalf("observed probe rule %+v, want %+v", st.Probe, s.Probe)
	}
	rt := &gatewayv1.HTTPRoute{}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.RouteName()}, rt); err != nil {
		t.Fatal(err)
	}
	return rt.Generation, wrote
}

// acceptedAt reports when the route's parent first reports Accepted=True for generation gen.
func acceptedAt(ns string, gen int64) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		_ = wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			rt := &gatewayv1.HTTPRoute{}
			if cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, rt) != nil || len(rt.Status.Parents) == 0 {
				return false, nil
			}
			c := meta.FindStatusCondition(rt.Status.Parents[0].Conditions, string(gatewayv1.RouteConditionAccepted))
			if c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration >= gen {
				out <- time.Now()
				return true, nil
			}
			return false, nil
		})
		close(out)
	}()
	return out
}

// waitAnswer waits until a request without the probe header gets an answer ok accepts.
func waitAnswer(t *testing.T, target probe.Target, path string, ok func(int, http.Header) bool) {
	t.Helper()
	hc := defaultClient()
	var code int
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.URL+path, nil)
		if err != nil {
			return false, err
		}
		req.Host = target.Host
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		code = resp.StatusCode
		return ok(resp.StatusCode, resp.Header), nil
	})
	if err != nil {
		t.Fatalf("waiting for the route to answer %s (last status %d)", path, code)
	}
}
