package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newDeactivateCmd(g *Globals) *cobra.Command {
	var o rootOptions
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
		Args: o.hf.args("deactivate"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runDeactivate(cmd.Context(), o)
		},
	}
	o.hf.add(cmd)
	return cmd
}

// rootOptions are the flags of a verb that only names its host.
type rootOptions struct {
	hf     hostFlags
	target string
	asJSON bool
}

func (g *Globals) runDeactivate(ctx context.Context, o rootOptions) error {
	if err := g.Confirm(fmt.Sprintf("deactivate stops and removes everything nivis manages on %s", o.target), o.target); err != nil {
		return err
	}
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbDeactivate, &sysmgr.RootRequest{Root: o.hf.root})
	if err != nil {
		return err
	}
	if res.Plan != nil {
		fmt.Fprint(g.Stdout, res.Plan.String())
	}
	for _, n := range res.Recovered {
		fmt.Fprintf(g.Stdout, "note: %s\n", n)
	}
	fmt.Fprintf(g.Stdout, "%s: deactivated (was generation %d, %d changes)\n", o.target, res.Previous, res.Changes)
	return nil
}
