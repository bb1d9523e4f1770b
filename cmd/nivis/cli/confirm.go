package cli

import (
	"bufio"
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
	var (
		hf  hostFlags
		gen int
	)
	cmd := &cobra.Command{
		Use:   "confirm TARGET",
		Short: "Keep a sysmgr generation that is waiting for confirmation (after apply --try)",
		Long: `confirm keeps the generation that apply --try (or an apply whose own
confirmation did not get through) left waiting on the host; without it, the host
rolls back when the window closes. It exits 5 when the generation was already
rolled back.`,
		Example: `  nivis apply root@web1 -c services.yaml --try
  nivis confirm root@web1`,
		Args: hf.args("confirm"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			h, err := hf.open(ctx, g, firstArg(args))
			if err != nil {
				return err
			}
			defer h.Close()
			var res sysmgr.ConfirmResult
			if err := h.call(ctx, sysmgr.VerbConfirm.Name, &sysmgr.ConfirmRequest{Root: hf.root, Generation: gen}, &res); err != nil {
				return err
			}
			if res.Already {
				fmt.Fprintf(g.Stdout, "%s: nothing waits for confirmation; generation %d is current\n", h.name, res.Generation)
			} else {
				fmt.Fprintf(g.Stdout, "%s: generation %d confirmed and kept\n", h.name, res.Generation)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&gen, "generation", 0, "the generation to confirm (default: whichever waits)")
	hf.add(cmd)
	return cmd
}
