package gates

import (
	"strings"
	"testing"
)

func TestCheckTemplate(t *testing.T) {
	cases := []struct {
		name, query, wantErr string
	}{
		{"plain PromQL", `sum(rate(x[1m]))`, ""},
		{"every variable", `rate(x{ns="{{ .Namespace }}",s="{{ .Service }}",c="{{ .CanaryService }}",st="{{ .StableService }}",r="{{ .Revision }}"}[{{ .Window }}])`, ""},
		{"unknown variable", `rate(x{s="{{ .Svc }}"}[1m])`, "can't evaluate field Svc"},
		{"unclosed action", `rate(x{s="{{ .Service"}[1m])`, "does not parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTemplate(tc.query)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
