package gatewayapi

import (
	"reflect"
	"testing"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

func TestMatrix(t *testing.T) {
	p := New()
	if err := p.Matrix().Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.Kinds()) == 0 || p.Kinds()[0].Kind != "HTTPRoute" {
		t.Errorf("Kinds() = %v, want HTTPRoute first", p.Kinds())
	}
	if p.Name() != "gatewayAPI" {
		t.Errorf("Name() = %q", p.Name())
	}
}

func TestTranslateGolden(t *testing.T) {
	p := New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := p.Translate(in)
			if !reflect.DeepEqual(out, again) {
				t.Error("two translations of the same input differ")
			}
			policytest.Golden(t, c.name, p, &in.Policy.Spec, out)
		})
	}
}

func TestTranslateWithoutPolicy(t *testing.T) {
	if _, err := New().Translate(policy.Input{}); err == nil {
		t.Error("Translate without a policy: want an error")
	}
}

func TestFormatDuration(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want gwv1.Duration
		err  bool
	}{
		{in: 0, want: "0s"},
		{in: 90 * time.Second, want: "90s"},
		{in: 1500 * time.Millisecond, want: "1500ms"},
		{in: time.Hour, want: "1h"},
		{in: 2 * time.Minute, want: "2m"},
		{in: 100500 * time.Millisecond, want: "1m40s500ms"},
		{in: 99999*time.Hour + 59*time.Minute + 59*time.Second + 999*time.Millisecond, want: "99999h59m59s999ms"},
		{in: 100000 * time.Hour, want: "100000h", err: true},
		{in: 1000500 * time.Microsecond, err: true},
		{in: time.Nanosecond, err: true},
		{in: -time.Second, err: true},
	} {
		got, err := formatDuration(c.in)
		if c.err {
			if err == nil {
				t.Errorf("formatDuration(%s) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("formatDuration(%s) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
