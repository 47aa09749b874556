package istio

import (
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{2 * time.Hour, "2h"},
		{90 * time.Minute, "90m"},
		{90 * time.Second, "90s"},
		{1500 * time.Millisecond, "1500ms"},
		{2500 * time.Microsecond, "0.0025s"},
		{time.Second + time.Nanosecond, "1.000000001s"},
	} {
		if got := formatDuration(tc.in); got != tc.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := time.ParseDuration(formatDuration(tc.in)); err != nil || back != tc.in {
			t.Errorf("formatDuration(%s) does not parse back: %v %v", tc.in, back, err)
		}
	}
}

func TestDurationGaps(t *testing.T) {
	g := &gaps{}
	if _, ok := g.duration("timeouts.request", time.Millisecond); !ok {
		t.Error("1ms: want accepted")
	}
	for _, d := range []time.Duration{0, 500 * time.Microsecond, 1500 * time.Microsecond} {
		if _, ok := g.duration("timeouts.request", d); ok {
			t.Errorf("%s: want refused (Istio takes whole milliseconds from 1ms)", d)
		}
	}
}
