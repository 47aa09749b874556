package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestScaleSmoke runs the harness at a reduced size: it fails on errors only (a Rollout that
// never becomes Healthy, the manager exiting, a request of the harness failing), never on
// timing; the figures are logged (go test -v) for a look, not asserted.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the scale smoke test takes about two minutes")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cfg := config{
		Rollouts: 500, Unrelated: 200, Wave: 100, Namespaces: 5, Replicas: 1,
		Pause: 5 * time.Second, Settle: 2 * time.Second, Idle: 5 * time.Second, Timeout: 5 * time.Minute,
		Workers: 16, ManagerBin: filepath.Join(t.TempDir(), "manager"),
		// The manager's default client limit (50 requests/s) makes a cold start of 500
		// Rollouts take minutes on its own; this test is about errors, not throughput.
		ManagerArgs: []string{"--kube-api-qps=1000", "--kube-api-burst=2000"},
		Command:     "go test ./hack/scale -run TestScaleSmoke -v",
	}
	if os.Getenv("KUBEBUILDER_ASSETS") != "" { // else run says how to get the binaries
		if err := buildManager(ctx, cfg.ManagerBin); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := run(ctx, cfg, t.Logf)
	if rep != nil {
		t.Log(rep.markdown())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestBucketQuantile checks the quantile estimate against PromQL's histogram_quantile rule.
func TestBucketQuantile(t *testing.T) {
	inf := []float64{0.1, 1, 10, math.Inf(1)}
	for _, tc := range []struct {
		name   string
		q      float64
		counts []float64
		want   float64
	}{
		{"first bucket interpolates from zero", 0.5, []float64{10, 10, 10, 10}, 0.05},
		{"middle bucket", 0.5, []float64{0, 10, 20, 20}, 1},
		{"inside a bucket", 0.75, []float64{0, 10, 20, 20}, 5.5},
		{"rank in +Inf answers the highest finite bound", 0.99, []float64{0, 0, 1, 100}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bucketQuantile(tc.q, inf, tc.counts); got != tc.want {
				t.Errorf("bucketQuantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// TestCumulativeTextFormat: a histogram parsed from the text format lists its +Inf bucket; the
// quantile of observations beyond the last finite bound is that bound, not +Inf (a p99 printed
// as -9.2e+12 ms once).
func TestCumulativeTextFormat(t *testing.T) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(`# TYPE d histogram
d_bucket{le="1"} 1
d_bucket{le="60"} 50
d_bucket{le="+Inf"} 100
d_sum 9000
d_count 100
`))
	if err != nil {
		t.Fatal(err)
	}
	bounds, counts := cumulative(fams["d"], nil)
	if want := []float64{1, 60, math.Inf(1)}; !slices.Equal(bounds, want) {
		t.Fatalf("bounds %v, want %v", bounds, want)
	}
	if got := bucketQuantile(0.99, bounds, counts); got != 60 {
		t.Errorf("p99 = %v, want 60 (the highest finite bound)", got)
	}
}
