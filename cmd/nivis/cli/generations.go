package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/sysmgr"
)

func newGenerationsCmd(g *Globals) *cobra.Command {
	var o rootOptions
	cmd := &cobra.Command{
		Use:   "generations TARGET",
		Short: "List the sysmgr generations on a host, the current one marked",
		Long: `generations lists the numbered generations nivis apply made on a host: date,
message, how many files and units each declares, which one is current, and one
waiting for confirmation. An activation that was interrupted (the agent was
killed) is shown too; the next apply converges from it.`,
		Example: `  nivis generations root@web1
  nivis generations --local --json`,
		Args: o.hf.args("generations"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runGenerations(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print JSON")
	o.hf.add(cmd)
	return cmd
}

func (g *Globals) runGenerations(ctx context.Context, o rootOptions) error {
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbGenerations, &sysmgr.RootRequest{Root: o.hf.root})
	if err != nil {
		return err
	}
	if o.asJSON {
		return g.printJSONResult(res)
	}
	if len(res.Generations) == 0 {
		fmt.Fprintln(g.Stdout, "no generations: nivis apply has not run on this host")
	} else {
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GEN\tDATE\tFILES\tUNITS\t\tMESSAGE")
		for _, s := range res.Generations {
			mark := ""
			switch {
			case s.Pending:
				mark = "(current, awaiting confirmation)"
			case s.Current:
				mark = "(current)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", s.Number, s.Date.Local().Format(time.DateTime), s.Files, s.Units, mark, s.Message)
		}
		tw.Flush()
	}
	if res.Pending != nil {
		fmt.Fprintf(g.Stdout, "generation %d rolls back to %d at %s unless confirmed\n", res.Pending.Generation, res.Pending.Previous, res.Pending.Deadline.Local().Format(time.RFC3339))
	}
	if res.Interrupted != "" {
		fmt.Fprintf(g.Stdout, "interrupted activation: %s; the next apply converges\n", res.Interrupted)
	}
	return nil
}
