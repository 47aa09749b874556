package linkerd

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{2 * time.Hour, "2h"},
		{90 * time.Minute, "90m"},
		{time.Minute, "1m"},
		{90 * time.Second, "90s"},
		{1500 * time.Millisecond, "1500ms"},
		{1500 * time.Microsecond, "2ms"},
	} {
		if got := duration(c.in); got != c.want {
			t.Errorf("duration(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

// linkerdDuration is what Linkerd's policy controller accepts in duration annotations: one
// integer and one unit.
var linkerdDuration = regexp.MustCompile(`^[0-9]+(ms|s|m|h|d)$`)

// TestAnnotationValues checks every case's annotations against the formats Linkerd's policy
// controller parses (an annotation it can't parse voids the Service's whole outbound policy).
func TestAnnotationValues(t *testing.T) {
	durations := map[string]bool{annRequestTimeout: true, annIdleTimeout: true, annRetryTimeout: true, annAccrualMinPenalty: true, annAccrualMaxPenalty: true}
	for _, c := range cases() {
		in := c.input("shop")
		out, err := New().Translate(in)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range out.ServiceAnnotations {
			switch {
			case durations[k]:
				if !linkerdDuration.MatchString(v) {
					t.Errorf("%s: %s=%q is not a Linkerd duration", c.name, k, v)
				}
			case k == annRetryLimit, k == annAccrualMaxFailures:
				if _, err := strconv.ParseUint(v, 10, 16); err != nil {
					t.Errorf("%s: %s=%q: %v", c.name, k, v, err)
				}
			case k == annRetryHTTP:
				for _, cond := range strings.Split(v, ",") {
					if cond != "5xx" && cond != "gateway-error" && !regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(cond) {
						t.Errorf("%s: %s has condition %q Linkerd does not parse", c.name, k, cond)
					}
				}
			case k == annAccrual:
				if v != "consecutive" {
					t.Errorf("%s: %s=%q", c.name, k, v)
				}
			case k == annTopologyMode:
				if v != "Auto" {
					t.Errorf("%s: %s=%q", c.name, k, v)
				}
			default:
				t.Errorf("%s: unexpected annotation %s", c.name, k)
			}
		}
	}
}
