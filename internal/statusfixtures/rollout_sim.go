package statusfixtures

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/gates"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/webhooks"
)

// Timing of the simulated cluster: the controller looks every tick; pods get ready
// podStartup after their Deployment changes; the gateway accepts a route at once and the
// probe proves it at the next look.
const (
	tick       = 5 * time.Second
	podStartup = 15 * time.Second
	// maxReconciles bounds every wait: a story that does not reach its state is a bug here.
	maxReconciles = 500
)

// sim runs the Rollout controller's loop (observe, rollout.Next, write status, apply, record
// the applied generation; controllers/rollout_controller.go) against a simulated cluster.
type sim struct {
	ro     *meshv1alpha1.Rollout
	gates  map[string]*meshv1alpha1.HealthGate
	prom   *prometheus
	now    time.Time
	target rollout.TargetState
	slots  map[meshv1alpha1.Slot]*simSlot
	route  simRoute

	podsFail  map[string]bool // revisions whose pods never get ready
	holdRoute bool            // the gateway does not accept route changes
	applyErr  *rollout.ApplyError
	action    meshv1alpha1.RolloutAction
	actions   int
	pending   *pendingCheck
}

type simSlot struct {
	revision string
	replicas int32
	changed  time.Time
}

type simRoute struct {
	found         bool
	weights       map[meshv1alpha1.Slot]int32
	matches       bool
	mirror        int32
	probeSlot     meshv1alpha1.Slot
	probeRevision string
	accepted      bool
	acceptedTime  time.Time
	version       int
	split         string // the version of the split the probe rule carries
}

type pendingCheck struct {
	ticket string
	check  rollout.Check
}

// image is the container image of a revision; the revision is its pod template's hash.
func podTemplate(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "checkout"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "checkout", Image: image,
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}},
		}}},
	}
}

func revisionOf(image string) string { return rollout.Revision(podTemplate(image)) }

// newSim is a created Rollout (generation 1, no status) whose target runs image with three
// replicas, gated by the sample gates against Prometheus answers that pass.
func newSim(spec meshv1alpha1.RolloutSpec, image string) *sim { //nolint:unparam // the image is what a fixture releases from
	ro := &meshv1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: objectMeta("checkout", 1),
		Spec:       spec,
	}
	must(webhooks.RolloutDefaulter{}.Default(context.Background(), ro))
	ro.Finalizers = []string{"mesh.sluice.dev/rollout"}
	s := &sim{
		ro: ro, now: t0,
		gates: map[string]*meshv1alpha1.HealthGate{
			"success-rate": gate("success-rate", successRateSpec(), 1),
			"p99-latency":  gate("p99-latency", p99Spec(), 1),
		},
		prom:     passing(ro.GetSlotServiceName(meshv1alpha1.SlotB)),
		target:   rollout.TargetState{Found: true, Revision: revisionOf(image), Replicas: 3},
		slots:    map[meshv1alpha1.Slot]*simSlot{meshv1alpha1.SlotA: {}, meshv1alpha1.SlotB: {}},
		podsFail: map[string]bool{},
	}
	return s
}

// release changes the target's image, as a commit to Git does.
func (s *sim) release(image string) { s.target.Revision = revisionOf(image) } //nolint:unparam // as a commit to Git names it

// changeSpec applies a spec change, as the API server does: a new generation.
func (s *sim) changeSpec(f func(*meshv1alpha1.RolloutSpec)) {
	f(&s.ro.Spec)
	must(webhooks.RolloutDefaulter{}.Default(context.Background(), s.ro))
	s.ro.Generation++
}

// act writes the action annotation; the next reconcile consumes it.
func (s *sim) act(a meshv1alpha1.RolloutAction) { s.action = a }

// until reconciles, one tick apart, until done holds for the Rollout.
func (s *sim) until(what string, done func(*meshv1alpha1.Rollout) bool) error {
	for i := 0; i < maxReconciles; i++ {
		s.reconcile()
		if done(s.ro) {
			return nil
		}
		s.advance()
	}
	var conds []string
	for _, c := range s.ro.Status.Conditions {
		conds = append(conds, c.Type+"="+string(c.Status)+"/"+c.Reason+": "+c.Message)
	}
	return fmt.Errorf("rollout: %q not reached in %d reconciles: phase %s, conditions %s", what, maxReconciles, s.ro.Status.Phase, strings.Join(conds, "; "))
}

// snapshot is the Rollout as the API server would return it now.
func (s *sim) snapshot() *meshv1alpha1.Rollout { return s.ro.DeepCopy() }

func (s *sim) advance() {
	s.now = s.now.Add(tick)
	if r := &s.route; r.found && !r.accepted && !s.holdRoute {
		r.accepted, r.acceptedTime = true, s.now
	}
}

func (s *sim) observe() rollout.Observations {
	obs := rollout.Observations{Now: s.now, Generation: s.ro.Generation, Target: s.target, Slots: map[meshv1alpha1.Slot]rollout.SlotState{}}
	for name, sl := range s.slots {
		st := rollout.SlotState{Revision: sl.revision, Replicas: sl.replicas,
			Ready: sl.replicas > 0 && sl.revision != "" && !s.podsFail[sl.revision] && !s.now.Before(sl.changed.Add(podStartup))}
		if st.Ready {
			st.Available = st.Replicas
		}
		obs.Slots[name] = st
	}
	r := s.route
	if !r.found {
		return obs
	}
	t := rollout.TrafficState{Found: true, Weights: map[meshv1alpha1.Slot]int32{}, Reaches: map[meshv1alpha1.Slot]bool{},
		Matches: r.matches, MirrorPercent: r.mirror, Accepted: r.accepted, Split: r.split,
		ProbeSlot: r.probeSlot, ProbeRevision: r.probeRevision}
	for sl, w := range r.weights {
		t.Weights[sl], t.Reaches[sl] = w, w > 0
	}
	if !r.accepted {
		t.Message = "parent gateways/edge has not accepted generation " + fmt.Sprint(r.version) + " yet"
	}
	// The probe answers once the gateway has served the accepted route for a look.
	if r.accepted && s.now.After(r.acceptedTime) {
		t.Proof = &rollout.Proof{Split: r.split, OK: true, Probed: true, Latency: 41 * time.Millisecond,
			Message: "the slot answered through gateways/edge (203.0.113.10:80) in 41ms (1 attempts)"}
	}
	obs.Traffic = t
	return obs
}

// reconcile is one pass of the controller's Reconcile, in its order.
func (s *sim) reconcile() {
	obs := s.observe()
	if s.action != "" {
		s.actions++
		obs.Action, obs.ActionID = s.action, fmt.Sprintf("%016x", uint64(s.actions)*0x9e3779b97f4a7c15)
		s.action = ""
	}
	obs.ApplyError = rollout.ApplyErrorOf(&s.ro.Status)
	ticket, counts := rollout.CheckTicket(&s.ro.Spec, &s.ro.Status)
	if p := s.pending; p != nil {
		if p.ticket == ticket && counts {
			c := p.check
			obs.Check = &c
		}
		s.pending = nil
	}
	before := s.ro.Status.DeepCopy()
	d := rollout.Next(&s.ro.Spec, before, obs)
	s.ro.Status = d.Status
	if before.ObservedGeneration != s.ro.Generation {
		s.ro.Status.ObservedGeneration = before.ObservedGeneration
	}
	s.startCheck(obs)
	if e := s.applyErr; e != nil {
		rollout.ApplyFailed(&s.ro.Status, e.Message, e.Stalled, s.ro.Generation)
	} else {
		s.apply(d)
		if s.ro.Status.ObservedGeneration != s.ro.Generation || obs.ApplyError != nil {
			obs.ApplyError = nil
			s.ro.Status = rollout.Next(&s.ro.Spec, before, obs).Status
			s.ro.Status.ObservedGeneration = s.ro.Generation
		}
	}
	s.stampTransitions(before)
}

// apply makes the decision true in the simulated cluster.
func (s *sim) apply(d rollout.Decision) {
	for name, in := range d.Slots {
		if in.Keep {
			continue
		}
		sl := s.slots[name]
		if in.Revision != "" && in.Revision != sl.revision {
			sl.revision, sl.changed = in.Revision, s.now
		}
		if in.Replicas > sl.replicas {
			sl.changed = s.now
		}
		sl.replicas = in.Replicas
	}
	if d.ScaleTargetToZero {
		s.target.Replicas = 0
	}
	t := d.Traffic
	if t == nil {
		return
	}
	r := &s.route
	same := r.found && r.matches == t.Matches && r.mirror == t.MirrorPercent && r.probeSlot == t.ProbeSlot && r.probeRevision == t.ProbeRevision
	for sl, w := range t.Weights {
		same = same && r.weights[sl] == w
	}
	if same {
		return
	}
	r.found, r.matches, r.mirror, r.probeSlot, r.probeRevision = true, t.Matches, t.MirrorPercent, t.ProbeSlot, t.ProbeRevision
	r.weights = map[meshv1alpha1.Slot]int32{}
	for sl, w := range t.Weights {
		r.weights[sl] = w
	}
	r.version++
	r.split = fmt.Sprintf("%s%04d", uidSuffix(s.ro.Name)[:6], r.version)
	r.accepted = !s.holdRoute
	r.acceptedTime = s.now
}

// startCheck starts a gate check when one is due; it finishes before the next look.
func (s *sim) startCheck(obs rollout.Observations) {
	if s.pending != nil || !rollout.CheckDue(&s.ro.Spec, &s.ro.Status, obs) {
		return
	}
	ticket, ok := rollout.CheckTicket(&s.ro.Spec, &s.ro.Status)
	if !ok {
		return
	}
	s.pending = &pendingCheck{ticket: ticket, check: s.check()}
}

// check is one gate check over the Rollout's gates, combined as controllers.RolloutGates
// combines them: the worst verdict (Fail > Unreachable > Inconclusive > Pass), every metric
// of every gate, the non-passing gates named in the message.
func (s *sim) check() rollout.Check {
	rank := map[meshv1alpha1.Verdict]int{meshv1alpha1.VerdictPass: 0, meshv1alpha1.VerdictInconclusive: 1, meshv1alpha1.VerdictUnreachable: 2, meshv1alpha1.VerdictFail: 3}
	out := rollout.Check{Verdict: meshv1alpha1.VerdictPass, Started: s.now}
	stable := s.ro.Status.StableSlot
	if stable == "" {
		stable = meshv1alpha1.SlotA
	}
	var msgs []string
	for _, ref := range s.ro.Spec.Analysis.HealthGates {
		g := s.gates[ref.Name]
		s.prom.canaryService = s.ro.GetSlotServiceName(stable.Other())
		res := gates.Evaluate(context.Background(), s.prom, &g.Spec, gates.Target{
			Namespace: s.ro.Namespace, Service: s.ro.GetServiceName(),
			CanaryService: s.ro.GetSlotServiceName(stable.Other()), StableService: s.ro.GetSlotServiceName(stable),
			Revision: s.ro.Status.CanaryRevision, Window: g.Spec.GetWindow(s.ro.Spec.Analysis.GetInterval()),
			MinSamples: s.ro.Spec.Analysis.GetMinSamples(),
		})
		for _, m := range res.Metrics {
			out.Gates = append(out.Gates, meshv1alpha1.GateMetricVerdict{Gate: ref.Name, MetricVerdict: m})
		}
		if rank[res.Verdict] > rank[out.Verdict] {
			out.Verdict = res.Verdict
		}
		if res.Verdict != meshv1alpha1.VerdictPass {
			msgs = append(msgs, ref.Name+": "+res.Message)
		}
	}
	out.Message = strings.Join(msgs, "; ")
	if out.Message == "" {
		out.Message = "all gates pass"
	}
	return out
}

// stampTransitions gives conditions the simulated time of their last status change, as the
// API server's clock would (the state machine leaves them to the wall clock).
func (s *sim) stampTransitions(before *meshv1alpha1.RolloutStatus) {
	for i := range s.ro.Status.Conditions {
		c := &s.ro.Status.Conditions[i]
		if old := meta.FindStatusCondition(before.Conditions, c.Type); old != nil && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		} else {
			c.LastTransitionTime = metav1.NewTime(s.now)
		}
	}
}
