package cli

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// version is set at build time: -ldflags "-X github.com/sluice-mesh/sluice/internal/cli.version=v0.1.0".
var version = ""

// pluginVersion is the version set at build time, else the module version `go install` records,
// else "devel".
func pluginVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// managerLabels select the manager Deployment of config/default (and of the OLM bundle).
var managerLabels = client.MatchingLabels{"control-plane": "controller-manager", "app.kubernetes.io/name": "sluice"}

func newVersion(o *options) *cobra.Command {
	var client bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version and the Sluice manager's",
		Long: `Print the plugin's version and, when the cluster can be reached, the Sluice manager's: the tag of
the image of its Deployment (labelled control-plane=controller-manager,
app.kubernetes.io/name=sluice, in any namespace).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _ = fmt.Fprintf(o.stdout, "plugin:  %s\n", pluginVersion())
			if client {
				return nil
			}
			_, _ = fmt.Fprintf(o.stdout, "manager: %s\n", managerVersion(cmd.Context(), o))
			return nil
		},
	}
	cmd.Flags().BoolVar(&client, "client", false, "Only the plugin's version; do not contact the cluster.")
	return cmd
}

// managerVersion is the manager's image tag (or digest), "unknown (why)" when it can't be told.
func managerVersion(ctx context.Context, o *options) string {
	k, err := o.connect()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var list appsv1.DeploymentList
	if err := k.c.List(ctx, &list, managerLabels); err != nil {
		return "unknown (" + errText(err) + ")"
	}
	if len(list.Items) == 0 {
		return "unknown (no Sluice manager Deployment found in the cluster)"
	}
	var out []string
	for _, d := range list.Items {
		img := ""
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" || img == "" {
				img = c.Image
			}
		}
		out = append(out, fmt.Sprintf("%s (image %s, Deployment %s/%s)", imageVersion(img), img, d.Namespace, d.Name))
	}
	return strings.Join(out, "; ")
}

// imageVersion is the tag of an image reference, else its digest, else "unknown".
func imageVersion(ref string) string {
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		if tag := imageVersion(name); tag != "unknown" {
			return tag
		}
		return digest
	}
	// A colon after the last slash starts the tag (one before it belongs to a registry port).
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "unknown"
}
