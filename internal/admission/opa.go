package admission

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"k8s.io/apimachinery/pkg/labels"
)

// reviewDeadline bounds a whole review (all policies) below the webhook's timeout; policies
// not evaluated by then count as violated in their own mode.
const reviewDeadline = 3 * time.Second

// OPA is the Engine on Open Policy Agent. Every policy is compiled alone, with the restricted
// capabilities, and its query prepared once per change; reviews share the prepared queries.
// A reload swaps the whole set at once.
type OPA struct {
	set atomic.Pointer[policySet]

	mu sync.Mutex // serializes Load
	// byName is the last good compiled form of each policy, kept when a new text fails.
	byName map[string]*compiled
	caps   *ast.Capabilities
}

type compiled struct {
	src      Source
	meta     meta
	compiler *ast.Compiler
	query    string
}

// active is a compiled policy as configured: its mode and prepared query.
type active struct {
	*compiled
	mode     Mode
	prepared rego.PreparedEvalQuery
}

type policySet struct {
	policies []*active
	budget   time.Duration
}

// NewOPA returns an engine with no policies; Load gives it some.
func NewOPA() *OPA {
	o := &OPA{byName: map[string]*compiled{}, caps: capabilities()}
	o.set.Store(&policySet{budget: DefaultBudget})
	return o
}

// LoadError is a policy that did not compile.
type LoadError struct {
	Source Source
	Err    error
	// KeptPrevious tells whether an earlier text of the same policy stays in force.
	KeptPrevious bool
}

func (e LoadError) Error() string {
	kept := "it is not in force"
	if e.KeptPrevious {
		kept = "its previous text stays in force"
	}
	return fmt.Sprintf("policy %s (%s) does not compile, %s: %v", e.Source.Name, e.Source.Origin, kept, e.Err)
}

// Loaded describes the set in force after a Load.
type Loaded struct {
	// Policies in force by name, with their mode.
	Policies map[string]Mode
	Errors   []LoadError
	Took     time.Duration
}

// Load compiles the sources that changed, applies the configuration and puts the new set in
// force. A source that does not compile never opens the gate: its last good text stays in
// force (reported in Errors); a source no longer given is removed.
func (o *OPA) Load(ctx context.Context, sources []Source, cfg Config) Loaded {
	start := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := Loaded{Policies: map[string]Mode{}}
	next := map[string]*compiled{}
	for _, src := range sources {
		prev := o.byName[src.Name]
		if prev != nil && prev.src.Module == src.Module {
			next[src.Name] = prev
			continue
		}
		c, err := o.compile(src)
		if err != nil {
			out.Errors = append(out.Errors, LoadError{Source: src, Err: err, KeptPrevious: prev != nil})
			if prev != nil {
				next[src.Name] = prev
			}
			continue
		}
		next[src.Name] = c
	}
	o.byName = next

	store := inmem.NewFromObjectWithOpts(map[string]any{"sluice": map[string]any{"params": cfg.params()}}, inmem.OptRoundTripOnWrite(true))
	set := &policySet{budget: cfg.budget()}
	for _, name := range slices.Sorted(maps.Keys(next)) {
		c := next[name]
		mode := c.meta.Mode
		if pc, ok := cfg.Policies[name]; ok && pc.Mode != "" {
			mode, _ = ParseMode(pc.Mode) // validated by ParseConfig
		}
		if mode == Off {
			continue
		}
		pq, err := rego.New(rego.Compiler(c.compiler), rego.Store(store), rego.Query(c.query),
			rego.Capabilities(o.caps)).PrepareForEval(ctx)
		if err != nil {
			out.Errors = append(out.Errors, LoadError{Source: c.src, Err: err})
			continue
		}
		set.policies = append(set.policies, &active{compiled: c, mode: mode, prepared: pq})
		out.Policies[name] = mode
	}
	o.set.Store(set)
	out.Took = time.Since(start)
	return out
}

func (o *OPA) compile(src Source) (*compiled, error) {
	mod, m, err := parse(src)
	if err != nil {
		return nil, err
	}
	comp := ast.NewCompiler().WithCapabilities(o.caps).WithEnablePrintStatements(false)
	if comp.Compile(map[string]*ast.Module{src.File: mod}); comp.Failed() {
		return nil, comp.Errors
	}
	return &compiled{src: src, meta: m, compiler: comp, query: mod.Package.Path.String() + ".violation"}, nil
}

// Policies lists the policies in force: name, mode, title, kinds.
func (o *OPA) Policies() []PolicyInfo {
	set := o.set.Load()
	out := make([]PolicyInfo, 0, len(set.policies))
	for _, p := range set.policies {
		out = append(out, PolicyInfo{Name: p.src.Name, Origin: p.src.Origin, Mode: p.mode, Title: p.meta.Title, Kinds: p.meta.Kinds})
	}
	return out
}

// PolicyInfo describes a policy in force.
type PolicyInfo struct {
	Name, Origin, Title string
	Mode                Mode
	Kinds               []Kind
}

// Review evaluates the policies that apply to the object: its kind, and its namespace's
// labels against the policy's namespace selector. The input is converted once.
func (o *OPA) Review(ctx context.Context, in Input) Verdict {
	set := o.set.Load()
	kind, ok := kindOf(in.Object)
	if !ok || (!kind.sluiceOwn() && in.NamespaceLabels[NamespaceLabel] != NamespaceLabelValue) {
		return Verdict{}
	}
	nsLabels := labels.Set(in.NamespaceLabels)
	var apply []*active
	for _, p := range set.policies {
		if slices.Contains(p.meta.Kinds, kind) && p.meta.NamespaceSelector.Matches(nsLabels) {
			apply = append(apply, p)
		}
	}
	v := Verdict{Evaluated: len(apply)}
	if len(apply) == 0 {
		return v
	}
	input, err := ast.InterfaceToValue(inputDocument(in))
	if err != nil {
		for _, p := range apply {
			v.Violations = append(v.Violations, failed(p, fmt.Errorf("converting the object: %w", err)))
		}
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, reviewDeadline)
	defer cancel()
	for _, p := range apply {
		found := evaluate(ctx, p, input, set.budget)
		if len(found) == 1 && found[0].EvalError && errors.Is(found[0].cause, context.DeadlineExceeded) && ctx.Err() == nil {
			// The budget is wall-clock time: a manager short of CPU (a CPU limit, GC, a burst
			// of reviews) can overrun it with a policy that needs microseconds. One more try,
			// with a longer budget, before a deny policy denies for it.
			found = evaluate(ctx, p, input, retryFactor*set.budget)
		}
		v.Violations = append(v.Violations, found...)
	}
	return v
}

// retryFactor is the budget of the second try of a policy that overran its budget.
const retryFactor = 4

func evaluate(ctx context.Context, p *active, input ast.Value, budget time.Duration) []Violation {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	rs, err := p.prepared.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("ran past its budget of %s: %w", budget, context.DeadlineExceeded)
		}
		return []Violation{failed(p, err)}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil // violation undefined: nothing found
	}
	items, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return []Violation{failed(p, fmt.Errorf("violation is a %T; it must be a set of strings or of {\"msg\", \"field\"} objects", rs[0].Expressions[0].Value))}
	}
	out := make([]Violation, 0, len(items))
	for _, it := range items {
		out = append(out, violationOf(p, it))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Field < out[j].Field || out[i].Field == out[j].Field && out[i].Message < out[j].Message
	})
	return out
}

func violationOf(p *active, item any) Violation {
	v := Violation{Policy: p.src.Name, Mode: p.mode}
	switch it := item.(type) {
	case string:
		v.Message = it
	case map[string]any:
		v.Message, _ = it["msg"].(string)
		v.Field, _ = it["field"].(string)
		if v.Message == "" {
			v.Message = fmt.Sprintf("%v", it)
		}
	default:
		v.Message = fmt.Sprintf("%v", it)
	}
	return v
}

func failed(p *active, err error) Violation {
	msg := err.Error()
	var te *ast.Errors
	if errors.As(err, &te) {
		msg = te.Error()
	}
	msg = strings.TrimSuffix(msg, ": "+context.DeadlineExceeded.Error())
	return Violation{Policy: p.src.Name, Mode: p.mode, EvalError: true, cause: err,
		Message: "the policy could not decide, which counts as a violation: " + strings.TrimSpace(msg)}
}

// kindOf is the checkable kind of a JSON object.
func kindOf(obj map[string]any) (Kind, bool) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := ""
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		group = g
	}
	k := Kind{group, kind}
	return k, slices.Contains(Checkable, k)
}

// inputDocument is `input` for the policies:
//
//	{operation, object, oldObject, namespace: {name, labels}, releasedBy: [rollout names],
//	 userInfo: {username, groups}, dryRun}
func inputDocument(in Input) map[string]any {
	nsLabels := make(map[string]any, len(in.NamespaceLabels))
	for k, v := range in.NamespaceLabels {
		nsLabels[k] = v
	}
	md, _ := in.Object["metadata"].(map[string]any)
	ns, _ := md["namespace"].(string)
	groups := make([]any, len(in.Groups))
	for i, g := range in.Groups {
		groups[i] = g
	}
	released := make([]any, len(in.ReleasedBy))
	for i, r := range in.ReleasedBy {
		released[i] = r
	}
	doc := map[string]any{
		"releasedBy": released,
		"operation":  string(in.Operation),
		"object":     in.Object,
		"namespace":  map[string]any{"name": ns, "labels": nsLabels},
		"userInfo":   map[string]any{"username": in.User, "groups": groups},
		"dryRun":     in.DryRun,
	}
	if in.OldObject != nil {
		doc["oldObject"] = in.OldObject
	}
	return doc
}
