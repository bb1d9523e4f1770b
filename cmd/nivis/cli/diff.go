package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/sysmgr"
)

func newDiffCmd(g *Globals) *cobra.Command {
	var o diffOptions
	cmd := &cobra.Command{
		Use:   "diff TARGET -c services.yaml",
		Short: "Show what apply would change on a host: the plan, conflicts and drift",
		Long: `diff computes, on the host, the plan apply would run for a Services config:
every file written or removed, every original kept aside or restored, every unit
stopped, started, restarted or reloaded. It lists every conflict (unmanaged
files in the way) and drift (managed files edited on the host since nivis wrote
them; apply overwrites them). Nothing on the host changes.`,
		Example: `  nivis diff root@web1 -c services.yaml
  nivis diff --local -c services.yaml --json`,
		Args: o.hf.args("diff"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runDiff(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.file, "config", "c", "", "the Services config (YAML or JSON)")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&o.exit, "exit-code", false, "exit 1 when the host differs from the config")
	o.hf.add(cmd)
	return cmd
}

type diffOptions struct {
	hf           hostFlags
	target, file string
	asJSON, exit bool
}

func (g *Globals) runDiff(ctx context.Context, o diffOptions) error {
	if o.file == "" {
		return exitcode.Errorf(exitcode.Usage, "diff needs -c services.yaml")
	}
	bundle, _, err := g.loadServices(o.file)
	if err != nil {
		return err
	}
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbDiff, &sysmgr.DiffRequest{Root: o.hf.root, Bundle: bundle})
	if err != nil {
		return err
	}
	if o.asJSON {
		if err := g.printJSONResult(res); err != nil {
			return err
		}
	} else {
		fmt.Fprint(g.Stdout, res.Plan.String())
	}
	if len(res.Plan.Conflicts) > 0 {
		return exitcode.Errorf(exitcode.Precondition, "%d conflicts: apply would refuse", len(res.Plan.Conflicts))
	}
	if o.exit && !res.Plan.Empty() {
		return exitcode.Errorf(exitcode.Failure, "the host differs from the config (%d changes)", res.Plan.Changes())
	}
	return nil
}

// firstArg is the TARGET, or "local" with --local.
func firstArg(args []string) string {
	if len(args) == 0 {
		return "local"
	}
	return args[0]
}
