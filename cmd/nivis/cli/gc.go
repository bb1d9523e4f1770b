package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newGCCmd(g *Globals) *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc TARGET --keep N",
		Short: "Delete old sysmgr generations and the stored files only they used",
		Long: `gc keeps the newest N generations (and always the current one, and the
fallback of one waiting for confirmation), deletes the others, then deletes the
store objects no kept generation refers to, leftovers of killed runs, and
backup copies nothing refers to any more. Rollback reaches only kept
generations afterwards.`,
		Example: `  nivis gc root@web1 --keep 5
  nivis gc --local --keep 1`,
		Args: o.hf.args("gc"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runGC(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.keep, "keep", 5, "how many of the newest generations to keep")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	o.hf.add(cmd)
	return cmd
}

type gcOptions struct {
	rootOptions
	keep int
}

func (g *Globals) runGC(ctx context.Context, o gcOptions) error {
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbGC, &sysmgr.GCRequest{Root: o.hf.root, Keep: o.keep})
	if err != nil {
		return err
	}
	if o.asJSON {
		return g.printJSONResult(res)
	}
	fmt.Fprintf(g.Stdout, "%s: removed generations %v, %d store objects (%d bytes), %d stale backups\n", o.target, res.RemovedGenerations, res.RemovedObjects, res.FreedBytes, res.RemovedBackups)
	return nil
}
