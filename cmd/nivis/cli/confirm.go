package cli

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/sysmgr"
)

// Confirm asks the user to type want (e.g. "yes" or a hostname) before
// something destructive. --yes answers for them; with no terminal and no
// --yes the answer is no, so scripts never destroy by accident.
func (g *Globals) Confirm(question, want string) error {
	if g.Yes {
		return nil
	}
	if !g.stdinIsTerminal() {
		return exitcode.Errorf(exitcode.Aborted, "%s: refusing without confirmation (no terminal to ask on); pass --yes to proceed", question)
	}
	fmt.Fprintf(g.Stderr, "%s\nType %q to continue: ", question, want)
	line, _ := bufio.NewReader(g.Stdin).ReadString('\n')
	if strings.TrimSpace(line) != want {
		return exitcode.Errorf(exitcode.Aborted, "not confirmed; nothing was changed")
	}
	return nil
}

func newConfirmCmd(g *Globals) *cobra.Command {
	var o confirmOptions
	cmd := &cobra.Command{
		Use:   "confirm TARGET",
		Short: "Keep a sysmgr generation that is waiting for confirmation (after apply --try)",
		Long: `confirm keeps the generation that apply --try (or an apply whose own
confirmation did not get through) left waiting on the host; without it, the host
rolls back when the window closes. It exits 5 when the generation was already
rolled back.`,
		Example: `  nivis apply root@web1 -c services.yaml --try
  nivis confirm root@web1`,
		Args: o.hf.args("confirm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target = firstArg(args)
			return g.runConfirm(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.gen, "generation", 0, "the generation to confirm (default: whichever waits)")
	o.hf.add(cmd)
	return cmd
}

type confirmOptions struct {
	hf     hostFlags
	target string
	gen    int
}

func (g *Globals) runConfirm(ctx context.Context, o confirmOptions) error {
	res, err := callHost(ctx, g, o.hf, o.target, sysmgr.VerbConfirm, &sysmgr.ConfirmRequest{Root: o.hf.root, Generation: o.gen})
	if err != nil {
		return err
	}
	if res.Already {
		fmt.Fprintf(g.Stdout, "%s: nothing waits for confirmation; generation %d is current\n", o.target, res.Generation)
	} else {
		fmt.Fprintf(g.Stdout, "%s: generation %d confirmed and kept\n", o.target, res.Generation)
	}
	return nil
}
