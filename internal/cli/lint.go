package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/cli/lint"
)

func newLint(o *options) *cobra.Command {
	var nsLabels string
	var noPolicies bool
	var policyConfig string
	var policyPaths []string
	cmd := &cobra.Command{
		Use:   "lint FILE|DIR...",
		Short: "Check Rollout, HealthGate and MeshPolicy manifests offline",
		Long: `Check manifests offline (.yaml, .yml, .json; folders are read recursively) with what the cluster
checks when they are applied, without a cluster:

  schema   the CRD's OpenAPI schema as the API server applies it: unknown fields, types,
           enums, bounds, patterns, list uniqueness, metadata (the CRDs built into the plugin)
  cel      the CRD's x-kubernetes-validations rules, with the API server's CEL code
  webhook  Sluice's defaulting and validating webhooks, registered as the manager registers
           them: HealthGate queries, what an explicit MeshPolicy provider can't express;
           references (target Deployment, HealthGates, Services, other MeshPolicies) are
           checked against the files: a kind the files do not have in a namespace is assumed
           to exist there
  policy   the admission policies: the built-in library, plus --policies with --config
           (the same engine as the webhook and "sluice policy test"); Namespace objects
           among the files give namespace labels, else --namespace-labels

Each finding names the file (#N: the Nth YAML document), the object, the field and the check.
Objects of other kinds are checked by the policies only.

Exit codes: 0 no error (warnings never fail), 1 at least one error, 2 a file that can't be
read or no objects at all.`,
		Example: `  kubectl sluice lint config/samples/
  kubectl sluice lint apps/shop/ --namespace-labels sluice.dev/env=production`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nl, err := labels.ConvertSelectorToLabelsMap(nsLabels)
			if err != nil {
				return exitWith(2, "Error: --namespace-labels %q: %v (want k=v,k2=v2)", nsLabels, err)
			}
			ms, err := sluiceadmission.ReadManifests(args...)
			if err == nil && len(ms) == 0 {
				err = fmt.Errorf("no Kubernetes objects in %s", strings.Join(args, ", "))
			}
			if err != nil {
				return exitWith(2, "Error: %v", err)
			}
			findings, err := lint.Run(cmd.Context(), ms, lint.Options{Namespace: o.namespace, NamespaceLabels: nl, NoPolicies: noPolicies, PolicyConfig: policyConfig, PolicyPaths: policyPaths})
			if err != nil {
				return exitWith(2, "Error: %v", err)
			}
			s := o.styleFor(o.stdout)
			docs := map[string]int{}
			files := 0
			for _, m := range ms {
				if _, seen := docs[m.File]; !seen {
					files++
				}
				docs[m.File] = max(docs[m.File], m.Index+1)
			}
			errs, warns := 0, 0
			for _, f := range findings {
				where := f.File
				if docs[f.File] > 1 {
					where += fmt.Sprintf("#%d", f.Document)
				}
				sev := s.paint(yellow, string(f.Severity))
				if f.Severity == lint.Error {
					sev = s.paint(red, string(f.Severity))
					errs++
				} else {
					warns++
				}
				msg := f.Message
				if f.Field != "" && !strings.HasPrefix(msg, f.Field) {
					msg = f.Field + ": " + msg
				}
				_, _ = fmt.Fprintf(o.stdout, "%s: %s: %s: %s %s\n", where, sev, f.Object, msg, s.paint(faint, "["+f.Check+"]"))
			}
			_, _ = fmt.Fprintf(o.stdout, "%d objects in %d files: %d errors, %d warnings\n", len(ms), files, errs, warns)
			if errs > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&nsLabels, "namespace-labels", "", "Labels `k=v,k2=v2` of the namespaces not given as Namespace objects in the files (for the policies).")
	cmd.Flags().BoolVar(&noPolicies, "no-policies", false, "Skip the admission policies.")
	cmd.Flags().StringVar(&policyConfig, "config", "", "The admission configuration (`file` with the config.yaml of the policy configuration ConfigMap).")
	cmd.Flags().StringArrayVar(&policyPaths, "policies", nil, "Your own policies: a .rego `file` or a folder of them, named <folder>/<file> as the manager names ConfigMap keys. Repeatable.")
	return cmd
}
