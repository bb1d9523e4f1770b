package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
)

func newFactsCmd(g *Globals) *cobra.Command {
	var asJSON, local bool
	cmd := &cobra.Command{
		Use:   "facts TARGET",
		Short: "Show what nivis sees on a host: OS, kernel and kexec, firmware, memory, disks, network, SSH",
		Long: `facts connects to TARGET over SSH, runs the nivis agent there and prints what it
found: OS and kernel, whether kexec can work (Secure Boot, lockdown,
kexec_load_disabled, the kernel's kexec syscalls and initrd compressions),
memory, disks with what is mounted from them, network interfaces, routes and
DNS, SSH ports and host key fingerprints, and whether the host already runs
the nivis rescue system. Nothing on the host is changed.

With --json the output is stable JSON for scripts (field names never change
meaning). With --local the facts of this machine are printed, without SSH.`,
		Example: `  nivis facts root@203.0.113.7
  nivis facts -p 2222 -i ~/.ssh/id_ed25519 admin@myhost --sudo --json
  nivis facts --local`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case local && len(args) > 0:
				return exitcode.Errorf(exitcode.Usage, "facts --local reads this machine and takes no TARGET (got %q)", args)
			case !local && len(args) != 1:
				return exitcode.Errorf(exitcode.Usage, "facts needs one TARGET ([user@]host[:port] or a Host from ~/.ssh/config), or --local for this machine")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFacts(cmd.Context(), g, args, local, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print stable, indented JSON instead of a table")
	cmd.Flags().BoolVar(&local, "local", false, "gather the facts of this machine, without SSH")
	return cmd
}

// remoteFacts connects to target and asks its agent for facts.
func (g *Globals) remoteFacts(ctx context.Context, target string) (*facts.Facts, error) {
	sess, err := g.Connect(ctx, target)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return sessionFacts(ctx, sess)
}

// sessionFacts runs the agent verb "facts" on an open session; other verbs
// (takeover, rescue) call it on the session they already hold.
func sessionFacts(ctx context.Context, sess *Session) (*facts.Facts, error) {
	f, err := facts.VerbFacts.Call(ctx, sess, nil)
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	if f.SchemaVersion != facts.SchemaVersion {
		return nil, exitcode.Errorf(exitcode.Precondition, "the nivis agent on the host answered facts schema %d, this client reads %d: run the same nivis version on both sides", f.SchemaVersion, facts.SchemaVersion)
	}
	return f, nil
}

// runFacts is `nivis facts TARGET` (or --local).
func runFacts(ctx context.Context, g *Globals, args []string, local, asJSON bool) error {
	var (
		f   *facts.Facts
		err error
	)
	if local {
		f, err = facts.Gather(ctx)
	} else {
		f, err = g.remoteFacts(ctx, args[0])
	}
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(f)
	}
	return f.WriteTable(g.Stdout)
}
