package cli

import (
	"github.com/spf13/cobra"
)

// newAgentCmd is the on-host side: `nivis agent VERB` speaks the JSON
// protocol of package agent. Hidden: people never type it.
func newAgentCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:    "agent VERB",
		Short:  "Run an agent verb (used by nivis itself on the target host)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return nil // the agent's stdout is the protocol: no logger setup on it
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return agentTable().Serve(cmd.Context(), args[0], g.Stdin, g.Stdout)
		},
	}
}
