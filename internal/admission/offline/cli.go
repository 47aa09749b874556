package offline

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
)

const usage = `Usage: sluice policy test [flags] <files|dirs>...

Reviews Kubernetes manifests (.yaml, .yml, .json; folders are read recursively) with
Sluice's admission policies, offline: the same engine, built-in library and defaulting as the
admission webhook. Namespace objects among the files give their namespaces' labels; Rollouts
among them mark the Deployments they release.

Exit code: 0 no deny finding (warn and audit findings never fail), 1 at least one deny
finding, 2 usage error, unreadable file or a policy that does not load.

Flags:
`

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

type cli struct {
	config, namespace, nsLabels, output string
	policies                            stringList
	noBuiltins                          bool
	paths                               []string
}

// Main runs `sluice policy test`; args are what follows "policy test". It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	c, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errShown) {
		return 2
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "sluice policy test: %v\nRun sluice policy test -h for usage.\n", err)
		return 2
	}
	opts := Options{Namespace: c.namespace}
	if opts.NamespaceLabels, err = labels.ConvertSelectorToLabelsMap(c.nsLabels); err != nil {
		_, _ = fmt.Fprintf(stderr, "sluice policy test: --namespace-labels %q: %v (want k=v,k2=v2)\n", c.nsLabels, err)
		return 2
	}
	engine, err := c.load(stderr)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "sluice policy test: %v\n", err)
		return 2
	}
	ms, err := sluiceadmission.ReadManifests(c.paths...)
	if err == nil && len(ms) == 0 {
		// A CI job pointed at the wrong folder must not pass silently.
		err = fmt.Errorf("no Kubernetes objects in %s", strings.Join(c.paths, ", "))
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "sluice policy test: %v\n", err)
		return 2
	}
	findings := Review(context.Background(), engine, ms, opts)
	s := summarize(len(ms), findings)
	if c.output == "json" {
		err = writeJSON(stdout, findings, s)
	} else {
		err = writeText(stdout, findings, s)
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "sluice policy test: %v\n", err)
		return 2
	}
	if s.Denied > 0 {
		return 1
	}
	return 0
}

// errShown is a flag error the flag package has already printed, with the usage.
var errShown = errors.New("usage error shown")

// parseArgs reads flags given before, between or after the paths (the flag package alone
// stops at the first path); after "--" everything is a path.
func parseArgs(args []string, stderr io.Writer) (*cli, error) {
	c := &cli{}
	fs := flag.NewFlagSet("sluice policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.config, "config", "", "YAML `file` with the content of the configuration ConfigMap's config.yaml key (budget, policies.<name>.mode, params).")
	fs.Var(&c.policies, "policies", "A .rego `file`, or a folder of them (not its subfolders), with the platform team's policies; each file is one policy named <folder>/<file without .rego>, as the manager names key <file>.rego of ConfigMap <folder>. Repeatable.")
	fs.BoolVar(&c.noBuiltins, "no-builtins", false, "Review with the --policies only, without the built-in library.")
	fs.StringVar(&c.namespace, "namespace", "default", "Namespace of objects that name none.")
	fs.StringVar(&c.nsLabels, "namespace-labels", "", "Labels `k=v,k2=v2` of the namespaces not given as Namespace objects in the files.")
	fs.StringVar(&c.output, "o", "text", "Output `format`: text or json.")
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, err
		} else if err != nil {
			return nil, errShown
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			c.paths = append(c.paths, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		c.paths, args = append(c.paths, rest[0]), rest[1:]
	}
	switch {
	case len(c.paths) == 0:
		return nil, errors.New("no files or folders to review")
	case c.output != "text" && c.output != "json":
		return nil, fmt.Errorf("-o %q: allowed are text, json", c.output)
	case c.noBuiltins && len(c.policies) == 0:
		return nil, errors.New("--no-builtins without --policies leaves no policy to review with")
	}
	return c, nil
}

func (c *cli) load(stderr io.Writer) (*sluiceadmission.OPA, error) {
	return LoadEngine(c.config, c.policies, c.noBuiltins, stderr)
}

// LoadEngine builds the engine as the manager does: the library (unless noBuiltins) and the
// .rego files or folders of policyPaths, with the configuration file (empty: the default). A
// policy that does not compile is an error, never skipped.
func LoadEngine(config string, policyPaths []string, noBuiltins bool, stderr io.Writer) (*sluiceadmission.OPA, error) {
	cfg := sluiceadmission.Config{}
	if config != "" {
		text, err := os.ReadFile(config)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if cfg, err = sluiceadmission.ParseConfig(string(text)); err != nil {
			return nil, fmt.Errorf("--config %s: %w", config, err)
		}
	}
	var sources []sluiceadmission.Source
	if !noBuiltins {
		sources = sluiceadmission.Library()
	}
	for _, p := range policyPaths {
		user, err := readPolicies(p)
		if err != nil {
			return nil, fmt.Errorf("--policies: %w", err)
		}
		sources = append(sources, user...)
	}
	// The engine keys policies by name: a second one would silently replace the first.
	seen := map[string]string{}
	for _, s := range sources {
		if prev, ok := seen[s.Name]; ok {
			return nil, fmt.Errorf("two policies named %s: %s and %s; rename one file", s.Name, prev, s.Origin)
		}
		seen[s.Name] = s.Origin
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		if _, ok := seen[name]; !ok {
			_, _ = fmt.Fprintf(stderr, "sluice policy test: warning: --config policies.%s names no loaded policy\n", name)
		}
	}
	engine := sluiceadmission.NewOPA()
	loaded := engine.Load(context.Background(), sources, cfg)
	if len(loaded.Errors) > 0 {
		msgs := make([]string, len(loaded.Errors))
		for i, e := range loaded.Errors {
			msgs[i] = e.Error()
		}
		return nil, errors.New(strings.Join(msgs, "\n"))
	}
	return engine, nil
}

// readPolicies reads one .rego file, or the .rego files of a folder (not its subfolders);
// _test.rego files are Rego unit tests, not policies.
func readPolicies(path string) ([]sluiceadmission.Source, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if st.IsDir() {
		all, err := filepath.Glob(filepath.Join(path, "*.rego"))
		if err != nil {
			return nil, err
		}
		files = slices.DeleteFunc(all, func(f string) bool { return strings.HasSuffix(f, "_test.rego") })
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .rego files", path)
		}
	}
	out := make([]sluiceadmission.Source, 0, len(files))
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		// Named as the manager names a ConfigMap's key: <folder>/<file>, so that one folder
		// per policy ConfigMap gives the same names (and --config re-modes the same way).
		abs, _ := filepath.Abs(f)
		name := filepath.Base(filepath.Dir(abs)) + "/" + strings.TrimSuffix(filepath.Base(f), ".rego")
		out = append(out, sluiceadmission.Source{Name: name, Origin: "file " + f, File: f, Module: string(text)})
	}
	return out, nil
}

// summary counts objects, objects denied, and warn and audit findings.
type summary struct {
	Objects  int `json:"objects"`
	Denied   int `json:"denied"`
	Warnings int `json:"warnings"`
	Audit    int `json:"audit"`
}

func summarize(objects int, fs []Finding) summary {
	s := summary{Objects: objects}
	type object struct {
		file  string
		index int
		name  string // List items share their file's index
	}
	denied := map[object]bool{}
	for _, f := range fs {
		switch f.Mode {
		case sluiceadmission.Deny:
			denied[object{f.Manifest.File, f.Manifest.Index, f.Object}] = true
		case sluiceadmission.Warn:
			s.Warnings++
		case sluiceadmission.Audit:
			s.Audit++
		}
	}
	s.Denied = len(denied)
	return s
}

func writeText(w io.Writer, fs []Finding, s summary) error {
	for _, f := range fs {
		// Violation.String is the webhook's form: [policy] message (field f), the field left
		// out when the message names it.
		if _, err := fmt.Fprintf(w, "%s: %s: %s %s\n", f.Manifest.File, f.Object, f.Mode, f.Violation); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%d objects, %d denied, %d warnings, %d audit findings\n", s.Objects, s.Denied, s.Warnings, s.Audit)
	return err
}

// jsonFinding is one finding in -o json.
type jsonFinding struct {
	File      string `json:"file"`
	Index     int    `json:"index"`
	Object    string `json:"object"`
	Policy    string `json:"policy"`
	Mode      string `json:"mode"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
	EvalError bool   `json:"evalError,omitempty"`
}

func writeJSON(w io.Writer, fs []Finding, s summary) error {
	out := struct {
		Findings []jsonFinding `json:"findings"`
		Summary  summary       `json:"summary"`
	}{Findings: make([]jsonFinding, 0, len(fs)), Summary: s}
	for _, f := range fs {
		out.Findings = append(out.Findings, jsonFinding{File: f.Manifest.File, Index: f.Manifest.Index, Object: f.Object,
			Policy: f.Policy, Mode: string(f.Mode), Field: f.Field, Message: f.Message, EvalError: f.EvalError})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
