package gates

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestExporterFormat checks the exporter speaks Traefik's names and labels, so the acceptance
// tests exercise the builtin queries against what Traefik really exposes.
func TestExporterFormat(t *testing.T) {
	e := testenv.StartExporter(t)
	e.Set("shop", "checkout-b", 100, 0.5, 20*time.Millisecond)
	label := `service="httproute-shop-checkout-gw-gateways-edge-ep-web-0-abc123-svc-shop-checkout-b-80@kubernetesgateway"`
	want := []string{
		`traefik_service_requests_total{code="500",method="GET",protocol="http",` + label + `}`,
		`traefik_service_request_duration_seconds_bucket{code="200",method="GET",protocol="http",` + label + `,le="0.025"}`,
	}
	var text, missing string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		text, missing = scrape(t, e.Addr()), ""
		for _, w := range want {
			if v, ok := sampleValue(text, w); !ok || v == 0 {
				missing = w
			}
		}
		return missing == "", nil
	})
	if err != nil {
		t.Fatalf("no non-zero sample %s after 5s in:\n%s", missing, text)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sampleValue finds the line "<series> <value>" of the text exposition format.
func sampleValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
