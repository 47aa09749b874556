package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func userPolicy(name, body string) Source {
	return Source{Name: name, Origin: "test", File: name + ".rego", Module: fmt.Sprintf(`# METADATA
# custom:
#   mode: deny
#   kinds: [Rollout]
package user.%s

%s
`, strings.ReplaceAll(name, "-", "_"), body)}
}

func rolloutInput() Input {
	return Input{Operation: Create, Object: map[string]any{
		"apiVersion": "mesh.sluice.dev/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
	}}
}

// TestNetworkAndHostBuiltinsAreRefused: a policy that calls the network or reads the
// manager's environment does not compile, and says which builtin is refused.
func TestNetworkAndHostBuiltinsAreRefused(t *testing.T) {
	for _, call := range []string{
		`http.send({"method": "GET", "url": "http://169.254.169.254/"})`,
		`net.lookup_ip_addr("example.com")`,
		`net.cidr_contains("10.0.0.0/8", "10.1.2.3")`,
		`opa.runtime()`,
		`providers.aws.sign_req({}, {}, 0)`,
		`rand.intn("x", 10)`,
	} {
		t.Run(call, func(t *testing.T) {
			o := NewOPA()
			l := o.Load(context.Background(), []Source{userPolicy("reach-out", fmt.Sprintf(`violation contains "x" if { x := %s; x }`, call))}, Config{})
			if len(l.Errors) != 1 || len(l.Policies) != 0 {
				t.Fatalf("a policy calling %s loaded: %+v", call, l)
			}
			name, _, _ := strings.Cut(call, "(")
			if msg := l.Errors[0].Error(); !strings.Contains(msg, "undefined function "+name) {
				t.Errorf("the error does not name the refused builtin %s: %s", name, msg)
			}
		})
	}
}

// TestEvaluationPastItsBudgetIsCutOff: a policy that runs long is stopped at its budget (and
// at 4 × the budget on its second try) and counts as violated in its own mode (deny: the
// request is denied, naming the policy).
func TestEvaluationPastItsBudgetIsCutOff(t *testing.T) {
	o := NewOPA()
	slow := userPolicy("slow", `violation contains "never" if {
	n := count([x | some i, j, k; numbers.range(1, 400)[i]; numbers.range(1, 400)[j]; numbers.range(1, 400)[k]; x := i + j + k])
	n < 0
}`)
	l := o.Load(context.Background(), []Source{slow, userPolicy("fine", `violation contains "fine" if { false }`)}, Config{Budget: metav1Duration(50 * time.Millisecond)})
	if len(l.Errors) > 0 {
		t.Fatal(l.Errors)
	}
	start := time.Now()
	v := o.Review(context.Background(), rolloutInput())
	took := time.Since(start)
	if !v.Denied() || len(v.Violations) != 1 || !v.Violations[0].EvalError || v.Violations[0].Policy != "slow" {
		t.Fatalf("verdict %+v: want one deny from slow, as not evaluated", v)
	}
	// One more try with 4 × the budget before it counts (a starved manager must not deny).
	if !strings.Contains(v.Violations[0].Message, "budget of 200ms") {
		t.Errorf("message does not say why: %s", v.Violations[0].Message)
	}
	t.Logf("cut off after %s: %s", took, v.Violations[0])
	if took > 2*time.Second {
		t.Errorf("the review took %s: the budget did not stop the evaluation", took)
	}
}

// TestReloadKeepsTheLastGoodTextOfABrokenPolicy: a policy that stops compiling stays in force
// as it was; a new policy that does not compile is reported and not in force; a removed
// policy is gone; the configuration re-modes and turns off.
func TestReloadKeepsTheLastGoodTextOfABrokenPolicy(t *testing.T) {
	ctx := context.Background()
	o := NewOPA()
	guard := userPolicy("guard", `violation contains {"msg": "web is frozen", "field": "metadata.name"} if input.object.metadata.name == "web"`)
	if l := o.Load(ctx, []Source{guard}, Config{}); len(l.Errors) > 0 {
		t.Fatal(l.Errors)
	}
	broken := guard
	broken.Module += "\nviolation contains x if {"
	l := o.Load(ctx, []Source{broken, userPolicy("new-broken", "violation contains")}, Config{})
	if len(l.Errors) != 2 || !l.Errors[0].KeptPrevious || l.Errors[1].KeptPrevious {
		t.Fatalf("load errors %v: want guard kept and new-broken not in force", l.Errors)
	}
	if !o.Review(ctx, rolloutInput()).Denied() {
		t.Fatal("the broken text opened the gate: web is admitted")
	}
	l = o.Load(ctx, []Source{guard}, Config{Policies: map[string]PolicyConfig{"guard": {Mode: "warn"}}})
	if v := o.Review(ctx, rolloutInput()); v.Denied() || len(v.ByMode(Warn)) != 1 || l.Policies["guard"] != Warn {
		t.Fatalf("re-moded to warn: %+v", v)
	}
	o.Load(ctx, []Source{guard}, Config{Policies: map[string]PolicyConfig{"guard": {Mode: "off"}}})
	if v := o.Review(ctx, rolloutInput()); len(v.Violations) != 0 {
		t.Fatalf("turned off, still found %v", v.Violations)
	}
	o.Load(ctx, nil, Config{})
	if v := o.Review(ctx, rolloutInput()); v.Evaluated != 0 {
		t.Fatalf("removed, still evaluated: %+v", v)
	}
}

// TestPolicyMetadataErrorsSayWhatIsAllowed: a policy without the metadata the engine needs
// is refused with a message that says what to write.
func TestPolicyMetadataErrorsSayWhatIsAllowed(t *testing.T) {
	for _, c := range []struct{ name, module, want string }{
		{"no-metadata", "package p\nviolation contains 1 if true", "no METADATA block"},
		{"bad-mode", "# METADATA\n# custom:\n#   mode: block\n#   kinds: [Rollout]\npackage p\nviolation contains 1 if true", "allowed are deny, warn, audit"},
		{"bad-kind", "# METADATA\n# custom:\n#   kinds: [Pod]\npackage p\nviolation contains 1 if true", `"Pod" is not checked by Sluice`},
		{"no-violation", "# METADATA\n# custom:\n#   kinds: [Rollout]\npackage p\nallow := true", "no `violation` rule"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewOPA().Load(context.Background(), []Source{{Name: c.name, File: c.name + ".rego", Module: c.module}}, Config{})
			if len(l.Errors) != 1 || !strings.Contains(l.Errors[0].Error(), c.want) {
				t.Fatalf("errors %v: want one saying %q", l.Errors, c.want)
			}
		})
	}
}

func metav1Duration(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// TestConfigModeOffAsYAMLWritesIt: `mode: off` unquoted is YAML 1.1's false; it still means off.
func TestConfigModeOffAsYAMLWritesIt(t *testing.T) {
	c, err := ParseConfig("policies:\n  rollout-weight-cap: {mode: off}\n  deployment-replicas-released:\n    mode: warn\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policies["rollout-weight-cap"].Mode != "off" || c.Policies["deployment-replicas-released"].Mode != "warn" {
		t.Fatalf("modes %+v", c.Policies)
	}
	if _, err := ParseConfig("policies:\n  x: {mode: yes}\n"); err == nil {
		t.Error("mode yes accepted")
	}
	if _, err := ParseConfig("policies:\n  x: {mod: warn}\n"); err == nil {
		t.Error("unknown key accepted")
	}
}
