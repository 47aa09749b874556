package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// rolloutTypes are the names `get` accepts for Rollouts, as kubectl would.
var rolloutTypes = []string{"rollout", "rollouts", "sro", "rollouts.mesh.sluice.dev", "rollout.mesh.sluice.dev"}

type getOptions struct {
	*options
	watch         bool
	allNamespaces bool
	interval      time.Duration
}

func newGet(o *options) *cobra.Command {
	g := &getOptions{options: o}
	cmd := &cobra.Command{
		Use:   "get rollout NAME | get rollouts [-A]",
		Short: "Show Rollouts as a tree: state, weights, gates, slots and pods",
		Long: `Show a Rollout as a tree: its phase and step, the canary weight status asks for and the weight
the HTTPRoute carries, the stable and canary images, the last verdict of every gate metric
against its threshold, what holds the release, the scale-down of the idle slot and the last
manual action; then each slot with its revision and pods.

With -w the view is redrawn in place whenever it changes (read every second); Ctrl-C ends it
with exit code 0.`,
		Example: `  kubectl sluice get rollout checkout -n shop
  kubectl sluice get rollouts -A
  kubectl sluice get rollout checkout -w`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completeRollouts(o, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(rolloutTypes, strings.ToLower(args[0])) {
				return fmt.Errorf("unknown resource type %q: kubectl sluice get shows rollouts (rollout, rollouts, sro)", args[0])
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			if name == "" && strings.HasSuffix(strings.ToLower(args[0]), "rollout") {
				return fmt.Errorf("get %s needs a NAME; use `get rollouts` for all Rollouts of the namespace", args[0])
			}
			if name != "" && g.allNamespaces {
				return fmt.Errorf("a NAME can't be given with --all-namespaces")
			}
			return g.run(cmd.Context(), name)
		},
	}
	cmd.Flags().BoolVarP(&g.watch, "watch", "w", false, "Redraw the view whenever it changes, until Ctrl-C.")
	cmd.Flags().BoolVarP(&g.allNamespaces, "all-namespaces", "A", false, "Rollouts of every namespace.")
	cmd.Flags().DurationVar(&g.interval, "interval", time.Second, "How often -w reads the cluster.")
	_ = cmd.Flags().MarkHidden("interval")
	return cmd
}

func (g *getOptions) run(ctx context.Context, name string) error {
	clock, err := g.clock()
	if err != nil {
		return err
	}
	k, err := g.connect()
	if err != nil {
		return err
	}
	s := g.styleFor(g.stdout)
	draw := func() (string, error) {
		lines, err := g.view(ctx, k, name, clock(), s)
		return strings.Join(lines, "\n") + "\n", err
	}
	if !g.watch {
		frame, err := draw()
		if err != nil {
			return err
		}
		_, err = io.WriteString(g.stdout, frame)
		return err
	}
	return g.live(ctx, draw)
}

// view is the text of the requested Rollouts.
func (g *getOptions) view(ctx context.Context, k *kube, name string, now time.Time, s style) ([]string, error) {
	if name != "" {
		v, err := readRollout(ctx, k.c, k.namespace, name)
		if err != nil {
			return nil, err
		}
		return tree(v, now, s), nil
	}
	var list meshv1alpha1.RolloutList
	var opts []client.ListOption
	where := "namespace " + k.namespace
	if !g.allNamespaces {
		opts = append(opts, client.InNamespace(k.namespace))
	} else {
		where = "any namespace"
	}
	if err := k.c.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing Rollouts: %w", err)
	}
	if len(list.Items) == 0 {
		return []string{"No Rollouts in " + where + "."}, nil
	}
	var out []string
	for i := range list.Items {
		if i > 0 {
			out = append(out, "")
		}
		out = append(out, tree(around(ctx, k.c, &list.Items[i]), now, s)...)
	}
	return out, nil
}

// live redraws until ctx ends (Ctrl-C): on a terminal in place, only when the text changed,
// by moving the cursor home and clearing what the new frame does not cover (no full clear,
// so no flicker); elsewhere each changed frame is printed after the previous one.
func (g *getOptions) live(ctx context.Context, draw func() (string, error)) error {
	tty := isTerminal(g.stdout)
	if tty {
		io.WriteString(g.stdout, "\x1b[?25l")       //nolint:errcheck // hide the cursor while drawing
		defer io.WriteString(g.stdout, "\x1b[?25h") //nolint:errcheck
	}
	prev := ""
	tick := time.NewTicker(g.interval)
	defer tick.Stop()
	for {
		frame, err := draw()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Keep watching: the Rollout may come (back), the API server may recover.
			frame = fmt.Sprintf("%s\n(retrying every %s)\n", err, g.interval)
		}
		if frame != prev {
			out := frame
			if tty {
				w, h := terminalSize(g.stdout)
				out = inPlace(frame, w, h)
			} else if prev != "" {
				out = "\n" + frame
			}
			if _, err := io.WriteString(g.stdout, out); err != nil {
				return err
			}
			prev = frame
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// inPlace turns a frame into what redraws it from the top-left corner: each line cut to the
// width and followed by clear-to-end-of-line, the frame cut to the height, then
// clear-to-end-of-screen for what the previous frame had below it.
func inPlace(frame string, width, height int) string {
	lines := strings.Split(strings.TrimSuffix(frame, "\n"), "\n")
	if height > 1 && len(lines) > height-1 {
		more := len(lines) - (height - 2)
		lines = append(lines[:height-2], fmt.Sprintf("… %d more lines (a taller terminal shows them)", more))
	}
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, l := range lines {
		b.WriteString(truncate(l, width))
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	return b.String()
}

func terminalSize(w io.Writer) (int, int) {
	type fder interface{ Fd() uintptr }
	if f, ok := w.(fder); ok {
		if width, height, err := term.GetSize(int(f.Fd())); err == nil {
			return width, height
		}
	}
	return 0, 0
}

// completeRollouts completes Rollout names (after the resource type when typed is true).
func completeRollouts(o *options, typed bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if typed && len(args) == 0 {
			return []cobra.Completion{"rollout", "rollouts"}, cobra.ShellCompDirectiveNoFileComp
		}
		if (typed && len(args) != 1) || (!typed && len(args) != 0) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := o.connect()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var list meshv1alpha1.RolloutList
		if err := k.c.List(cmd.Context(), &list, client.InNamespace(k.namespace)); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, r := range list.Items {
			if strings.HasPrefix(r.Name, toComplete) {
				names = append(names, r.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
