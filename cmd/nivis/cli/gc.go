package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newGCCmd(g *Globals) *cobra.Command {
	var (
		hf     hostFlags
		keep   int
		asJSON bool
	)
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
		Args: hf.args("gc"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := hf.open(ctx, g, firstArg(args))
			if err != nil {
				return err
			}
			defer h.Close()
			var res sysmgr.GCResult
			if err := h.call(ctx, sysmgr.VerbGC.Name, &sysmgr.GCRequest{Root: hf.root, Keep: keep}, &res); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(g.Stdout, "%s: removed generations %v, %d store objects (%d bytes), %d stale backups\n", h.name, res.RemovedGenerations, res.RemovedObjects, res.FreedBytes, res.RemovedBackups)
			return nil
		},
	}
	cmd.Flags().IntVar(&keep, "keep", 5, "how many of the newest generations to keep")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	hf.add(cmd)
	return cmd
}
