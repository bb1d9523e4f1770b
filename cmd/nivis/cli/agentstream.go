package cli

import (
	"github.com/spf13/cobra"
)

// newAgentStreamCmd is the on-host side of streaming verbs: stdin is data
// (a zstd tarball), the verb's JSON argument is on the command line.
func newAgentStreamCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:    "agent-stream VERB ARGS",
		Short:  "Run a streaming agent verb (used by nivis itself on the target host)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return nil // stdout is the protocol
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return agentTable().ServeStream(cmd.Context(), args[0], args[1], g.Stdin, g.Stdout)
		},
	}
}
