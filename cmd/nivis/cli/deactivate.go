package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newDeactivateCmd(g *Globals) *cobra.Command {
	var hf hostFlags
	cmd := &cobra.Command{
		Use:   "deactivate TARGET",
		Short: "Stop and remove everything nivis manages on a host and restore the originals it kept",
		Long: `deactivate stops every unit nivis started, removes every file, link, directory,
drop-in, mask and secret it put on the host, and puts back every original file
it kept aside (onConflict: backup). Users and groups it added stay (files may
belong to them). Generations stay until gc, so a later rollback can bring the
configuration back.`,
		Example: `  nivis deactivate root@web1 --yes
  nivis deactivate --local`,
		Args: hf.args("deactivate"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			target := firstArg(args)
			if err := g.Confirm(fmt.Sprintf("deactivate stops and removes everything nivis manages on %s", target), target); err != nil {
				return err
			}
			h, err := hf.open(ctx, g, target)
			if err != nil {
				return err
			}
			defer h.Close()
			var res sysmgr.ApplyResult
			err = h.call(ctx, sysmgr.VerbDeactivate.Name, &sysmgr.RootRequest{Root: hf.root}, &res)
			if res.Plan != nil {
				fmt.Fprint(g.Stdout, res.Plan.String())
			}
			for _, n := range res.Recovered {
				fmt.Fprintf(g.Stdout, "note: %s\n", n)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Stdout, "%s: deactivated (was generation %d, %d changes)\n", h.name, res.Previous, res.Changes)
			return nil
		},
	}
	hf.add(cmd)
	return cmd
}
