package main

import (
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// report is what a run measured; zero durations were not measured.
type report struct {
	cfg     config
	date    time.Time
	machine string
	manager string // what the manager was built from

	toReady, toObserved, toAllReady time.Duration // from manager start
	start, steady, unrelated, wave  *window       // start: from /readyz to every Rollout Ready
	waveSent, waveDone              time.Duration // image updates sent; first update → all promoted
	peakRSS                         float64
	notes                           []string
}

// window is the manager's activity between two samples.
type window struct {
	dur                  time.Duration
	cores                float64
	rss, rssAnon, heap   float64
	perSecond            map[string]float64 // client requests by HTTP method
	failed               map[string]float64 // non-2xx responses by "METHOD code" (counts)
	stepDelay, queueWait quantiles
	others               map[string]float64 // cores used by the neighbours
	reconciles           map[string]float64 // Rollout reconciles by result (counts)
	reconcileTime        quantiles
}

type quantiles struct {
	p50, p99, n float64
	bucket50    [2]float64 // the bucket holding each quantile: the interpolation is only as
	bucket99    [2]float64 // good as the buckets (the workqueue's are 10× wide)
	present     bool       // the metric exists
}

// measure compares two samples of the manager.
func measure(a, b sample) *window {
	w := &window{dur: b.at.Sub(a.at), rss: b.rss, rssAnon: b.rssAnon, perSecond: map[string]float64{}, failed: map[string]float64{}}
	secs := w.dur.Seconds()
	w.cores = (b.cpu - a.cpu) / secs
	if f := b.families["go_memstats_heap_inuse_bytes"]; f != nil && len(f.Metric) > 0 {
		w.heap = f.Metric[0].GetGauge().GetValue()
	}
	before := counters(a.families["rest_client_requests_total"])
	for k, v := range counters(b.families["rest_client_requests_total"]) {
		d := v - before[k]
		if d <= 0 {
			continue
		}
		w.perSecond[k.method] += d / secs
		if !strings.HasPrefix(k.code, "2") {
			w.failed[k.method+" "+k.code] += d
		}
	}
	w.others = map[string]float64{}
	for k, v := range b.others {
		w.others[k] = (v - a.others[k]) / secs
	}
	w.reconciles = map[string]float64{}
	rb := resultCounts(a.families["controller_runtime_reconcile_total"])
	for k, v := range resultCounts(b.families["controller_runtime_reconcile_total"]) {
		if d := v - rb[k]; d > 0 {
			w.reconciles[k] = d
		}
	}
	w.reconcileTime = histogramDelta(a.families, b.families, "controller_runtime_reconcile_time_seconds", map[string]string{"controller": "rollout"})
	w.stepDelay = histogramDelta(a.families, b.families, "sluice_rollout_step_decision_delay_seconds", nil)
	w.queueWait = histogramDelta(a.families, b.families, "workqueue_queue_duration_seconds", map[string]string{"name": "rollout"})
	return w
}

type methodCode struct{ method, code string }

// counters sums rest_client_requests_total by method and code (over hosts).
func counters(f *dto.MetricFamily) map[methodCode]float64 {
	out := map[methodCode]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		k := methodCode{}
		for _, l := range m.Label {
			switch l.GetName() {
			case "method":
				k.method = l.GetValue()
			case "code":
				k.code = l.GetValue()
			}
		}
		out[k] += m.GetCounter().GetValue()
	}
	return out
}

// resultCounts sums controller_runtime_reconcile_total of the rollout controller by result.
func resultCounts(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		if labelsMatch(m, map[string]string{"controller": "rollout"}) {
			for _, l := range m.Label {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// histogramDelta is the p50 and p99 of the observations a histogram gained between two
// scrapes, summed over the series whose labels match.
func histogramDelta(a, b map[string]*dto.MetricFamily, name string, match map[string]string) quantiles {
	fb := b[name]
	if fb == nil {
		return quantiles{}
	}
	bounds, after := cumulative(fb, match)
	_, before := cumulative(a[name], match)
	delta := make([]float64, len(after))
	for i := range after {
		delta[i] = after[i]
		if i < len(before) {
			delta[i] -= before[i]
		}
	}
	q := quantiles{present: true}
	if len(delta) > 0 {
		q.n = delta[len(delta)-1]
	}
	q.p50, q.p99 = bucketQuantile(0.5, bounds, delta), bucketQuantile(0.99, bounds, delta)
	q.bucket50, q.bucket99 = bucketOf(0.5, bounds, delta), bucketOf(0.99, bounds, delta)
	return q
}

// cumulative returns a histogram's upper bounds (+Inf last) and cumulative counts, summed over
// matching series.
func cumulative(f *dto.MetricFamily, match map[string]string) (bounds, counts []float64) {
	if f == nil {
		return nil, nil
	}
	for _, m := range f.Metric {
		if !labelsMatch(m, match) || m.Histogram == nil {
			continue
		}
		h := m.Histogram
		if bounds == nil {
			for _, bk := range h.Bucket {
				if !math.IsInf(bk.GetUpperBound(), 1) { // the text format lists +Inf; added below
					bounds = append(bounds, bk.GetUpperBound())
				}
			}
			bounds = append(bounds, math.Inf(1))
			counts = make([]float64, len(bounds))
		}
		for i, bk := range h.Bucket {
			if i < len(counts)-1 {
				counts[i] += float64(bk.GetCumulativeCount())
			}
		}
		counts[len(counts)-1] += float64(h.GetSampleCount())
	}
	return bounds, counts
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, l := range m.Label {
			found = found || (l.GetName() == k && l.GetValue() == v)
		}
		if !found {
			return false
		}
	}
	return true
}

// bucketQuantile estimates a quantile from cumulative bucket counts as PromQL's
// histogram_quantile does: linear interpolation inside the bucket holding the rank; a rank
// in the +Inf bucket answers the highest finite bound. NaN when there are no observations.
func bucketQuantile(q float64, bounds, counts []float64) float64 {
	if len(counts) < 2 || counts[len(counts)-1] == 0 {
		return math.NaN()
	}
	rank := q * counts[len(counts)-1]
	b := 0
	for b < len(counts)-1 && counts[b] < rank {
		b++
	}
	if b == len(bounds)-1 {
		return bounds[len(bounds)-2]
	}
	lower, prev := 0.0, 0.0
	if b > 0 {
		lower, prev = bounds[b-1], counts[b-1]
	}
	if counts[b] == prev {
		return bounds[b]
	}
	return lower + (bounds[b]-lower)*(rank-prev)/(counts[b]-prev)
}

// bucketOf is the (lower, upper] bounds of the bucket holding quantile q.
func bucketOf(q float64, bounds, counts []float64) [2]float64 {
	if len(counts) == 0 || counts[len(counts)-1] == 0 {
		return [2]float64{}
	}
	b := 0
	for b < len(counts)-1 && counts[b] < q*counts[len(counts)-1] {
		b++
	}
	if b == 0 {
		return [2]float64{0, bounds[0]}
	}
	return [2]float64{bounds[b-1], bounds[b]}
}

// machine describes the host: cores and CPU model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (nproc), %s, %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// markdown renders the report for docs/benchmarks.md.
func (r *report) markdown() string {
	var b strings.Builder
	c := r.cfg
	fmt.Fprintf(&b, "\n### %d Rollouts, %d unrelated pairs, wave of %d — %s\n\n", c.Rollouts, c.Unrelated, c.Wave, r.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s. Real kube-apiserver and etcd (envtest), no kubelet: the harness publishes Deployment status, pods, EndpointSlices and route status.\n\n", r.machine)
	fmt.Fprintf(&b, "Manager: %s.\n\n", r.manager)
	fmt.Fprintf(&b, "Command: `KUBEBUILDER_ASSETS=\"$(hack/envtest-binaries.sh)\" %s`\n\n", c.Command)
	when := "added after the steady measurement"
	if c.UnrelatedFirst {
		when = "created before the manager started"
	}
	fmt.Fprintf(&b, "%d Rollouts in %d namespaces, %d replica(s) each, steps setWeight 50 → pause %s → setWeight 100, probe Disabled; %d unrelated Deployment/Service pairs (%s). MB = 10⁶ bytes.\n\n",
		c.Rollouts, c.Namespaces, c.Replicas, c.Pause, c.Unrelated, when)
	b.WriteString("| figure | value |\n|---|---|\n")
	row := func(k, format string, args ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(format, args...)) }
	if r.toReady > 0 {
		row("manager start → /readyz", "%s", secs(r.toReady))
	}
	if r.toObserved > 0 {
		row(fmt.Sprintf("manager start → all %d Rollouts observed (observedGeneration current)", c.Rollouts), "%s", secs(r.toObserved))
		row(fmt.Sprintf("manager start → all %d Rollouts Ready", c.Rollouts), "%s", secs(r.toAllReady))
	}
	if w := r.start; w != nil {
		r.activity(row, "cold start", w, c.Rollouts)
	}
	if w := r.steady; w != nil {
		row(fmt.Sprintf("steady (idle %s): RSS (of it anonymous, the rest the binary's pages) / Go heap in use", secs(w.dur)), "%s (%s) / %s", mb(w.rss), mb(w.rssAnon), mb(w.heap))
		row("steady: CPU", "%.3f cores", w.cores)
		row("steady: API requests/s from the manager", "%s", w.requests())
	}
	if w := r.unrelated; w != nil && r.steady != nil {
		row(fmt.Sprintf("+ %d unrelated pairs (idle %s): RSS / Go heap in use", c.Unrelated, secs(w.dur)), "%s (%+.1f%%) / %s (%+.1f%%)",
			mb(w.rss), 100*(w.rss/r.steady.rss-1), mb(w.heap), 100*(w.heap/r.steady.heap-1))
		row("+ unrelated: CPU", "%.3f cores", w.cores)
		row("+ unrelated: API requests/s from the manager", "%s", w.requests())
	}
	if w := r.wave; w != nil {
		row(fmt.Sprintf("wave: %d image updates sent in", c.Wave), "%s", secs(r.waveSent))
		row(fmt.Sprintf("wave: first update → all %d promoted", c.Wave), "%s", secs(r.waveDone))
		r.activity(row, "wave", w, c.Wave)
		row("wave: RSS / Go heap in use at the end", "%s / %s", mb(w.rss), mb(w.heap))
		row("wave: step decision delay p50 / p99 (sluice_rollout_step_decision_delay_seconds)", "%s", w.stepDelay)
		row("wave: rollout workqueue wait p50 / p99 (workqueue_queue_duration_seconds)", "%s", w.queueWait)
	}
	if r.peakRSS > 0 {
		row("peak RSS over the run (VmHWM)", "%s", mb(r.peakRSS))
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	b.WriteString("\n")
	return b.String()
}

// activity: CPU of every process, requests, reconciles and their duration over a busy window.
func (r *report) activity(row func(k, format string, args ...any), name string, w *window, rollouts int) {
	row(name+": CPU cores, manager / kube-apiserver / etcd / harness", "%.2f / %.2f / %.2f / %.2f",
		w.cores, w.others["kube-apiserver"], w.others["etcd"], w.others["harness"])
	row(name+": API requests/s from the manager", "%s", w.requests())
	total := 0.0
	for _, v := range w.reconciles {
		total += v
	}
	s := fmt.Sprintf("%.0f (%.1f per Rollout)", total, total/float64(max(rollouts, 1)))
	for _, k := range slices.Sorted(maps.Keys(w.reconciles)) {
		s += fmt.Sprintf("; %s %.0f", k, w.reconciles[k])
	}
	row(name+": Rollout reconciles", "%s", s)
	row(name+": Rollout reconcile time p50 / p99", "%s", w.reconcileTime)
}

// requests: the total per second, writes, then each method; failures as counts.
func (w *window) requests() string {
	total, writes := 0.0, 0.0
	for m, v := range w.perSecond {
		total += v
		if m != "GET" {
			writes += v
		}
	}
	s := fmt.Sprintf("%.2f (writes %.2f)", total, writes)
	for _, m := range slices.Sorted(maps.Keys(w.perSecond)) {
		s += fmt.Sprintf("; %s %.2f", m, w.perSecond[m])
	}
	for _, k := range slices.Sorted(maps.Keys(w.failed)) {
		s += fmt.Sprintf("; %s: %.0f", k, w.failed[k])
	}
	return s
}

func (q quantiles) String() string {
	switch {
	case !q.present:
		return "not exported by this manager"
	case q.n == 0:
		return "no observations"
	}
	return fmt.Sprintf("%s / %s (n=%.0f; buckets %s, %s)", dur(q.p50), dur(q.p99), q.n, bucket(q.bucket50), bucket(q.bucket99))
}

func dur(s float64) string { return secs(time.Duration(s * float64(time.Second))) }

func bucket(b [2]float64) string {
	if math.IsInf(b[1], 1) {
		return fmt.Sprintf("> %s", dur(b[0]))
	}
	return fmt.Sprintf("%s–%s", dur(b[0]), dur(b[1]))
}

func secs(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2g ms", float64(d)/float64(time.Millisecond))
	}
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }
