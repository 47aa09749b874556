package linkerd

import (
	"fmt"
	"time"
)

// duration renders d as Linkerd's annotation parser reads it: one integer and one unit (ms, s,
// m or h); "1m30s" is refused there, so 90s stays "90s". Linkerd counts whole milliseconds: a
// finer duration is rounded up to the next millisecond (a timeout never gets shorter).
func duration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d%u.unit == 0 {
			return fmt.Sprintf("%d%s", d/u.unit, u.name)
		}
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return fmt.Sprintf("%dms", ms)
}
