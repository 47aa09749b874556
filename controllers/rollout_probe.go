package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// The data-plane probe (see internal/probe): the route carries a rule only a probe request
// matches, routed to one slot and answering with the version of the split written with it.
// Once the gateway accepted a route, a probe sent through the gateway and answered with that
// version proves the data plane serves the whole split (Traefik marks a route Accepted 54 ms to
// 1.9 s before it serves it). Probes run off the reconcile worker, one per Rollout at a time,
// like gate checks; the proof is handed to the state machine, which keeps weights and time
// still until the split it wrote is served.

// probeBudget bounds one probe run (its attempts until proof); the runner's deadline is a
// little longer, so the run reports why it failed rather than time out.
const probeBudget = 10 * time.Second

// probeRule is the probe rule of a traffic intent: routed to the intent's probe slot, with the
// token of its revision and the version of the whole split.
func (r *RolloutReconciler) probeRule(ro *meshv1alpha1.Rollout, s traffic.Split, t *rollout.TrafficIntent, path string) *traffic.ProbeRule {
	if t.ProbeSlot == "" {
		return nil
	}
	rule := &traffic.ProbeRule{
		Service: ro.GetSlotServiceName(t.ProbeSlot),
		Path:    path,
		Token:   probe.Token(string(ro.UID), t.ProbeRevision, string(t.ProbeSlot)),
	}
	// Everything that decides where a request goes, in a fixed order.
	rule.Split = probe.Version(fmt.Sprintf("%s=%d;%s=%d;matches=%t;mirror=%d;probe=%s@%s%s",
		s.Stable.Service, s.Stable.Weight, s.Canary.Service, s.Canary.Weight, len(s.Matches) > 0, s.MirrorPercent, rule.Service, rule.Token, rule.Path))
	return rule
}

// probePath is the path of slot's probe requests: the spec's, else the slot pods' readiness
// path on the target port.
func (r *RolloutReconciler) probePath(ro *meshv1alpha1.Rollout, w *world, slot meshv1alpha1.Slot) string {
	if p := ro.Spec.TrafficRouting.GatewayAPI.Probe; p != nil && p.Path != "" {
		return p.Path
	}
	if d := w.slots[slot]; d != nil {
		return probe.Path(&d.Spec.Template.Spec, ro.Spec.Service.GetTargetPort())
	}
	if w.target != nil {
		return probe.Path(&w.target.Spec.Template.Spec, ro.Spec.Service.GetTargetPort())
	}
	return "/"
}

// observeProbe fills in what the route's probe rule says (the split it carries, the slot and
// revision it reaches) and the proof of a probe that finished since the last reconcile.
func (r *RolloutReconciler) observeProbe(ro *meshv1alpha1.Rollout, key types.NamespacedName, w *world, rule *traffic.ProbeRule) {
	t := &w.obs.Traffic
	if ro.Spec.TrafficRouting.GatewayAPI.GetProbeMode() == meshv1alpha1.ProbeDisabled {
		t.ProbeOff = true
		return
	}
	w.probe = rule
	ticket := ""
	if rule != nil {
		t.Split = rule.Split
		for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
			if ro.GetSlotServiceName(s) != rule.Service {
				continue
			}
			t.ProbeSlot = s
			if rev := w.obs.Slots[s].Revision; rev != "" && rule.Token == probe.Token(string(ro.UID), rev, string(s)) {
				t.ProbeRevision = rev
			}
		}
		ticket = rule.Token + "/" + rule.Split
	}
	if p, ok := r.Probes.Take(key, ticket); ok && rule != nil {
		t.Proof = &p
	}
}

// startProbe starts a probe of the split the route carries once the gateway accepted it and
// until it is proven, unless one runs.
func (r *RolloutReconciler) startProbe(ro *meshv1alpha1.Rollout, w *world) {
	rule, t := w.probe, w.obs.Traffic
	if rule == nil || t.ProbeOff || !t.Found || !t.Accepted {
		return
	}
	if d := ro.Status.DataPlane; d != nil && d.Split == rule.Split {
		return // proven already
	}
	spec := ro.Spec.TrafficRouting.GatewayAPI
	mode, override := spec.GetProbeMode(), ""
	if spec.Probe != nil {
		override = spec.Probe.Address
	}
	split := r.split(ro, ro.Status.StableSlot, &rollout.TrafficIntent{}, "")
	// Twice the slot's replicas in a row: a round-robin data plane then reaches every endpoint
	// it holds for the slot, including as many stale ones (pods already gone: seen in chaos
	// runs after an API server restart) as the slot has pods, and one failing answer holds the
	// weight back.
	successes := 1
	if t.ProbeSlot != "" {
		successes = int(min(2*max(w.obs.Slots[t.ProbeSlot].Replicas, 1), 10))
	}
	req := probe.Request{Path: rule.Path, Token: rule.Token, Split: rule.Split, Successes: successes}
	key := client.ObjectKeyFromObject(ro)
	r.Probes.Start(key, rule.Token+"/"+rule.Split, probeBudget+5*time.Second,
		func(ctx context.Context) rollout.Proof { return r.runProbe(ctx, split, req, mode, override) },
		func() rollout.Proof {
			return rollout.Proof{Split: rule.Split, Message: fmt.Sprintf("the probe did not finish within %s", probeBudget+5*time.Second)}
		})
}

// runProbe finds where to probe and probes, off the worker.
func (r *RolloutReconciler) runProbe(ctx context.Context, split traffic.Split, req probe.Request, mode meshv1alpha1.ProbeMode, override string) rollout.Proof {
	proof := rollout.Proof{Split: req.Split}
	targets, unprobeable, err := r.Router.ProbeTargets(ctx, split, override)
	switch {
	case err != nil:
		proof.Message = "finding where to probe: " + err.Error()
		probeRuns.WithLabelValues("error").Inc()
		return proof
	case unprobeable != "" && mode == meshv1alpha1.ProbeRequired:
		proof.Message = "no probe is possible (" + unprobeable + ") and spec.trafficRouting.gatewayAPI.probe.mode is Required"
		probeRuns.WithLabelValues("unprobeable").Inc()
		return proof
	case unprobeable != "":
		proof.OK, proof.Message = true, unprobeable
		probeRuns.WithLabelValues("unprobeable").Inc()
		return proof
	}
	req.Targets = targets
	pctx, cancel := context.WithTimeout(ctx, probeBudget)
	defer cancel()
	res := r.Prober.Probe(pctx, req)
	proof.Latency, proof.Message = res.Latency, res.Message
	switch {
	case res.OK:
		proof.OK, proof.Probed = true, true
		probeRuns.WithLabelValues("proven").Inc()
		dataPlaneLag.Observe(res.Latency.Seconds())
	case res.Failure == probe.NoAnswer && mode == meshv1alpha1.ProbeBestEffort:
		// Nothing answered at the Gateway's address: the manager can't reach it (from where it
		// runs), which says nothing about the data plane. Any answer stays authoritative.
		proof.OK = true
		proof.Message = "the Gateway's address did not answer the manager (" + res.Message + "); set spec.trafficRouting.gatewayAPI.probe.address to probe through it"
		probeRuns.WithLabelValues(string(res.Failure)).Inc()
	default:
		probeRuns.WithLabelValues(string(ptr.Deref(&res.Failure, ""))).Inc()
	}
	return proof
}
