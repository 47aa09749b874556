package traefik

import (
	"reflect"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

func TestMatrix(t *testing.T) {
	p := New()
	if err := p.Matrix().Validate(); err != nil {
		t.Fatal(err)
	}
	if k := p.Kinds(); len(k) == 0 || k[0].Group != "traefik.io" || k[0].Kind != "Middleware" {
		t.Errorf("Kinds() = %v, want traefik.io Middleware first", k)
	}
	if p.Name() != "traefik" {
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
			// Every filter references a Middleware of the output, in the same order.
			if out.Rules != nil {
				if len(out.Rules.Filters) != len(out.Objects) {
					t.Fatalf("%d filters for %d Middlewares", len(out.Rules.Filters), len(out.Objects))
				}
				for i, f := range out.Rules.Filters {
					if f.ExtensionRef == nil || string(f.ExtensionRef.Name) != out.Objects[i].GetName() {
						t.Errorf("filter %d %+v does not reference Middleware %s", i, f.ExtensionRef, out.Objects[i].GetName())
					}
				}
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
		want string
		err  bool
	}{
		{in: 0, want: "0s"},
		{in: 90 * time.Second, want: "90s"},
		{in: 1500 * time.Millisecond, want: "1500ms"},
		{in: 2 * time.Hour, want: "2h"},
		{in: 1500 * time.Microsecond, want: "1500us"},
		{in: 1000500 * time.Nanosecond, want: "1000500ns"},
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
