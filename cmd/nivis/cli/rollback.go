package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newRollbackCmd(g *Globals) *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback TARGET [--to N]",
		Short: "Activate an earlier sysmgr generation (default: the one before the current)",
		Long: `rollback activates an earlier generation exactly as apply activates a new one:
files from the store, units stopped, restarted and started as the difference
requires, and a complete revert if anything fails. Secrets stay as they are
(they are never stored). A generation waiting for confirmation is dropped.`,
		Example: `  nivis rollback root@web1
  nivis rollback --local --to 3`,
		Args: o.hf.args("rollback"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runRollback(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.to, "to", 0, "the generation to activate (see `nivis generations`)")
	o.hf.add(cmd)
	return cmd
}

type rollbackOptions struct {
	hf     hostFlags
	target string
	to     int
}

func (g *Globals) runRollback(ctx context.Context, o rollbackOptions) error {
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbRollback, &sysmgr.RollbackRequest{Root: o.hf.root, To: o.to})
	if err != nil {
		return err
	}
	if res.Plan != nil {
		fmt.Fprint(g.Stdout, res.Plan.String())
	}
	fmt.Fprintf(g.Stdout, "%s: rolled back from generation %d to %d (%d changes)\n", o.target, res.Previous, res.Generation, res.Changes)
	return nil
}
