// Package cli is kubectl-sluice, the kubectl plugin for Sluice: `get` draws a Rollout as a
// tree (live with -w), `status` waits for a release to end with an exit code for CI, the
// action commands drive a release through the manager's action annotation, and `lint` checks
// manifests offline with the CRD schema, the webhooks' checks and the admission policies.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// exitError ends the command with a chosen exit code; msg (if any) goes to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitWith(code int, format string, args ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, args...)}
}

// options are the flags every command shares.
type options struct {
	kubeconfig, context, namespace string
	noColor                        bool
	// now fixes the clock for relative times (hidden; tests make output deterministic with it).
	now    string
	stdout io.Writer
	stderr io.Writer
}

// clock is the time relative times are computed against.
func (o *options) clock() (func() time.Time, error) {
	if o.now == "" {
		return time.Now, nil
	}
	t, err := time.Parse(time.RFC3339, o.now)
	if err != nil {
		return nil, fmt.Errorf("--now %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", o.now)
	}
	return func() time.Time { return t }, nil
}

// Main runs the plugin with args (without the program name) and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// controller-runtime's client warns on stderr when no logger is set; the plugin logs nothing.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRoot(&options{stdout: stdout, stderr: stderr})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			_, _ = fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	_, _ = fmt.Fprintf(stderr, "Error: %v\n", err)
	return 1
}

func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-sluice",
		Short: "Watch and drive Sluice releases",
		Long: `kubectl sluice shows Sluice Rollouts (mesh.sluice.dev/v1alpha1) as a tree, waits for a
release to end, sends manual actions to the Sluice manager and checks manifests offline.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// kubectl runs plugins as kubectl-sluice; help and completion show `kubectl sluice`.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl sluice"},
	}
	f := root.PersistentFlags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).")
	f.StringVar(&o.context, "context", "", "The kubeconfig context to use.")
	f.StringVarP(&o.namespace, "namespace", "n", "", "Namespace of the Rollout (default: the context's namespace).")
	f.BoolVar(&o.noColor, "no-color", false, "Never color the output (it is colored only on a terminal, and not when NO_COLOR is set).")
	f.StringVar(&o.now, "now", "", "Compute relative times against this RFC 3339 time instead of the clock.")
	_ = f.MarkHidden("now")

	root.AddCommand(newGet(o), newStatus(o), newVersion(o), newLint(o))
	for _, a := range actions {
		root.AddCommand(newAction(o, a))
	}
	return root
}
