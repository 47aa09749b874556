package traefik

import (
	"fmt"
	"time"
)

// goUnits are Go duration units, largest first, down to microseconds (below, nanoseconds).
var goUnits = []struct {
	name string
	d    time.Duration
}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}}

// formatDuration writes d for Traefik's CRD, whose pattern ^([0-9]+(ns|us|µs|ms|s|m|h)?)+$
// takes Go durations without fractions (time.Duration.String writes "1.5s", which it refuses):
// the largest unit that holds d exactly ("90s", "1500ms").
func formatDuration(d time.Duration) (string, error) {
	switch {
	case d < 0:
		return "", fmt.Errorf("%s is negative", d)
	case d == 0:
		return "0s", nil
	}
	for _, u := range goUnits {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.name), nil
		}
	}
	return fmt.Sprintf("%dns", d), nil
}
