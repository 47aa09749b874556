package gatewayapi

import (
	"fmt"
	"strings"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// maxPart is the largest number one part of a Gateway API duration may hold (1 to 5 digits).
const maxPart = 99999

// gepUnits are the units of GEP-2257, largest first.
var gepUnits = []struct {
	name string
	d    time.Duration
}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}}

// formatDuration writes d in Gateway API's duration format (GEP-2257; CRD pattern
// ^([0-9]{1,5}(h|m|s|ms)){1,4}$: no fractions, nothing below a millisecond). One unit that
// holds d exactly is preferred, as people write it ("90s", "1500ms"); otherwise d is split into
// hours, minutes, seconds and milliseconds ("1m40s500ms").
func formatDuration(d time.Duration) (gwv1.Duration, error) {
	switch {
	case d < 0:
		return "", fmt.Errorf("%s is negative", d)
	case d == 0:
		return "0s", nil
	case d%time.Millisecond != 0:
		return "", fmt.Errorf("%s has a fraction of a millisecond", d)
	}
	for _, u := range gepUnits {
		if d%u.d == 0 && d/u.d <= maxPart {
			return gwv1.Duration(fmt.Sprintf("%d%s", d/u.d, u.name)), nil
		}
	}
	var b strings.Builder
	rest := d
	for _, u := range gepUnits {
		n := rest / u.d
		if n == 0 {
			continue
		}
		if n > maxPart { // only hours can overflow: the smaller parts are below 1000
			return "", fmt.Errorf("%s is longer than the longest Gateway API duration, 99999h59m59s999ms", d)
		}
		fmt.Fprintf(&b, "%d%s", n, u.name)
		rest -= n * u.d
	}
	return gwv1.Duration(b.String()), nil
}
