package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newRollbackCmd(g *Globals) *cobra.Command {
	var (
		hf hostFlags
		to int
	)
	cmd := &cobra.Command{
		Use:   "rollback TARGET [--to N]",
		Short: "Activate an earlier sysmgr generation (default: the one before the current)",
		Long: `rollback activates an earlier generation exactly as apply activates a new one:
files from the store, units stopped, restarted and started as the difference
requires, and a complete revert if anything fails. Secrets stay as they are
(they are never stored). A generation waiting for confirmation is dropped.`,
		Example: `  nivis rollback root@web1
  nivis rollback --local --to 3`,
		Args: hf.args("rollback"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := hf.open(ctx, g, firstArg(args))
			if err != nil {
				return err
			}
			defer h.Close()
			var res sysmgr.ApplyResult
			err = h.call(ctx, sysmgr.VerbRollback.Name, &sysmgr.RollbackRequest{Root: hf.root, To: to}, &res)
			if res.Plan != nil {
				fmt.Fprint(g.Stdout, res.Plan.String())
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Stdout, "%s: rolled back from generation %d to %d (%d changes)\n", h.name, res.Previous, res.Generation, res.Changes)
			return nil
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the generation to activate (see `nivis generations`)")
	hf.add(cmd)
	return cmd
}
