package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/internal/gates"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// GateEvaluator evaluates one HealthGate for a target.
type GateEvaluator interface {
	Evaluate(ctx context.Context, g *meshv1alpha1.HealthGate, t gates.Target) gates.Result
}

// PrometheusEvaluator evaluates gates against the Prometheus servers they name, with the
// credentials of their Secret. Sources (HTTP clients with their connection pools) are kept per
// gate, and rebuilt when the gate or its Secret changes.
type PrometheusEvaluator struct {
	// Reader reads Secrets uncached: Sluice does not keep every Secret of the cluster in memory.
	Reader client.Reader
	// Egress limits the addresses gates may name (nil: any; the manager sets
	// --gate-egress-allow's policy).
	Egress *egress.Policy

	mu      sync.Mutex
	sources map[string]cachedSource // by gate namespace/name
}

type cachedSource struct {
	key string // gate UID, generation and Secret resourceVersion
	src *gates.PrometheusSource
}

// Evaluate implements GateEvaluator.
func (e *PrometheusEvaluator) Evaluate(ctx context.Context, g *meshv1alpha1.HealthGate, t gates.Target) gates.Result {
	src, err := e.source(ctx, g)
	if err != nil {
		// A Secret we cannot read is a setup problem, not a bad release.
		return gates.Result{Verdict: meshv1alpha1.VerdictInconclusive, Message: err.Error()}
	}
	return gates.Evaluate(ctx, src, &g.Spec, t)
}

func (e *PrometheusEvaluator) source(ctx context.Context, g *meshv1alpha1.HealthGate) (gates.MetricSource, error) {
	var auth gates.Auth
	key := fmt.Sprintf("%s/%d", g.UID, g.Generation)
	if ref := g.Spec.Prometheus.SecretRef; ref != nil {
		s := &corev1.Secret{}
		if err := e.Reader.Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: ref.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("spec.prometheus.secretRef: Secret %s/%s does not exist", g.Namespace, ref.Name)
			}
			return nil, fmt.Errorf("reading Secret %s/%s: %w", g.Namespace, ref.Name, err)
		}
		if err := usableCredentials(s); err != nil {
			return nil, err
		}
		auth = gates.Auth{Token: string(s.Data["token"]), Username: string(s.Data["username"]), Password: string(s.Data["password"]), CA: s.Data["ca.crt"]}
		key += "/" + s.ResourceVersion
	}
	name := g.Namespace + "/" + g.Name
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.sources[name]
	if ok && c.key == key {
		return c.src, nil
	}
	if ok {
		c.src.Close() // the gate or its Secret changed: drop the old connections
	}
	src, err := gates.NewPrometheusSource(g.Spec.Prometheus, auth, e.Egress)
	if err != nil {
		return nil, err
	}
	if e.sources == nil {
		e.sources = map[string]cachedSource{}
	}
	e.sources[name] = cachedSource{key: key, src: src}
	return src, nil
}

// usableCredentials refuses the Secrets a HealthGate must not make the manager send anywhere:
// ServiceAccount tokens (they act as the account inside the cluster), and every Secret not
// labelled for gates (meshv1alpha1.CredentialsLabel).
func usableCredentials(s *corev1.Secret) error {
	if s.Type == corev1.SecretTypeServiceAccountToken {
		return fmt.Errorf("spec.prometheus.secretRef: Secret %s/%s is a ServiceAccount token (type %s), which Sluice never sends: put the credential in an Opaque Secret labelled %s=true", s.Namespace, s.Name, s.Type, meshv1alpha1.CredentialsLabel)
	}
	if s.Labels[meshv1alpha1.CredentialsLabel] != "true" {
		return fmt.Errorf("spec.prometheus.secretRef: Secret %s/%s lacks the label %s=true, which marks the Secrets HealthGates may use", s.Namespace, s.Name, meshv1alpha1.CredentialsLabel)
	}
	return nil
}

// RolloutGates is the Rollout's GateChecker: every HealthGate the Rollout names is evaluated
// for its current release (canary and stable slot Services, canary revision).
type RolloutGates struct {
	Client    client.Client
	Evaluator GateEvaluator
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Check runs one check over all the Rollout's gates, all at once. Across gates, a Fail wins (a
// reachable Prometheus saw a bad canary), then Unreachable, then Inconclusive; Pass needs all
// to pass. It runs off the reconcile worker (see checks.Runner), bounded by Deadline.
func (c *RolloutGates) Check(ctx context.Context, r *meshv1alpha1.Rollout) rollout.Check {
	out := rollout.Check{Verdict: meshv1alpha1.VerdictPass, Started: c.now()}
	rank := map[meshv1alpha1.Verdict]int{meshv1alpha1.VerdictPass: 0, meshv1alpha1.VerdictInconclusive: 1, meshv1alpha1.VerdictUnreachable: 2, meshv1alpha1.VerdictFail: 3}
	refs := r.Spec.Analysis.HealthGates
	results := make([]gateResult, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { results[i] = c.gate(ctx, r, ref.Name) })
	}
	wg.Wait()
	var msgs []string
	premature := len(refs) > 0
	for i, ref := range refs {
		res := results[i].Result
		premature = premature && results[i].premature
		for _, m := range res.Metrics {
			out.Gates = append(out.Gates, meshv1alpha1.GateMetricVerdict{Gate: ref.Name, MetricVerdict: m})
		}
		if rank[res.Verdict] > rank[out.Verdict] {
			out.Verdict = res.Verdict
		}
		if res.Verdict != meshv1alpha1.VerdictPass {
			msgs = append(msgs, describe(ref.Name, res))
		}
	}
	out.Message = strings.Join(msgs, "; ")
	if out.Message == "" {
		out.Message = "all gates pass"
	}
	out.Premature = premature && out.Verdict == meshv1alpha1.VerdictInconclusive
	return out
}

// Unreachable is the check's result when it did not finish by its deadline.
func (c *RolloutGates) Unreachable(r *meshv1alpha1.Rollout, started time.Time, deadline time.Duration) rollout.Check {
	return rollout.Check{Verdict: meshv1alpha1.VerdictUnreachable, Started: started,
		Message: fmt.Sprintf("the gate check did not finish within %s", deadline)}
}

// Deadline bounds one check of the Rollout: every gate may try each of its Prometheus
// addresses for its full timeout (gates and metrics run at once), plus a little slack. A
// HealthGate that can't be read counts as the default timeout.
func (c *RolloutGates) Deadline(ctx context.Context, r *meshv1alpha1.Rollout) time.Duration {
	longest := meshv1alpha1.DefaultPrometheusTimeout
	for _, ref := range r.Spec.Analysis.HealthGates {
		g := &meshv1alpha1.HealthGate{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: ref.Name}, g); err != nil {
			continue
		}
		n := max(len(g.Spec.Prometheus.Addresses), 1)
		// A Secret read and the minSamples query come before the metrics.
		if d := time.Duration(2*n) * g.Spec.Prometheus.GetTimeout(); d > longest {
			longest = d
		}
	}
	return longest + 2*time.Second
}

type gateResult struct {
	gates.Result
	premature bool // not evaluated yet: the window reaches back before the release
}

// gate evaluates one HealthGate of the Rollout.
func (c *RolloutGates) gate(ctx context.Context, r *meshv1alpha1.Rollout, name string) gateResult {
	g := &meshv1alpha1.HealthGate{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, g); err != nil {
		res := gates.Result{Verdict: meshv1alpha1.VerdictInconclusive, Message: fmt.Sprintf("HealthGate %s: %v", name, err)}
		if apierrors.IsNotFound(err) {
			res.Message = fmt.Sprintf("HealthGate %s/%s does not exist", r.Namespace, name)
		}
		return gateResult{Result: res}
	}
	return c.evaluate(ctx, r, g)
}

func (c *RolloutGates) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// evaluate runs one gate, unless its window still reaches back before the release started:
// the slots are reused, so that part of the window holds the previous release's requests
// (a rolled-back canary's failures would fail the next release before it served anything).
func (c *RolloutGates) evaluate(ctx context.Context, r *meshv1alpha1.Rollout, g *meshv1alpha1.HealthGate) gateResult {
	t := gateTarget(r, g)
	now := c.now()
	if start := r.Status.ReleaseStartTime; start != nil && now.Sub(start.Time) < t.Window {
		return gateResult{premature: true, Result: gates.Result{Verdict: meshv1alpha1.VerdictInconclusive, Message: fmt.Sprintf(
			"window %s still covers requests from before this release (started %s ago)", t.Window, now.Sub(start.Time).Round(time.Second))}}
	}
	return gateResult{Result: c.Evaluator.Evaluate(ctx, g, t)}
}
