// Package cli is the nivis command line: a root command with OpenSSH-style
// global flags and one file per verb. cmd/nivis only calls Main, so tests
// drive the whole CLI in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/logging"
)

// Globals are the flags every verb shares, and the process's streams.
type Globals struct {
	Port        int
	Identities  []string
	Options     []string
	Sudo        bool
	LogFormat   string
	Verbose     int
	Yes         bool
	EnvPassword bool

	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *logrus.Logger
}

// verbs are the commands of nivis, one file each, listed here explicitly.
var verbs = []func(g *Globals) *cobra.Command{
	newAgentCmd, newAgentStreamCmd,
	newApplyCmd, newConfirmCmd, newDeactivateCmd, newDiffCmd, newGCCmd, newGenerationsCmd, newRollbackCmd,
	newDiskoCmd, newFactsCmd, newInstallCmd, newKexecCmd, newRescueCmd,
	newUploadCmd, newValidateCmd, newVersionCmd,
}

// NewRoot builds the command tree.
func NewRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "nivis",
		Short: "Take over Linux hosts over SSH and make them what a declarative config says",
		Long: `nivis takes over an existing Linux host over SSH: it kexecs the host into an
in-RAM rescue system, partitions disks from a disko-compatible layout, installs a
system and verifies that the host came back. It also layers managed systemd units
and /etc files onto a running distro, with generations and rollback.

Targets are [user@]host[:port] or a Host alias from ~/.ssh/config.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			l, err := logging.New(g.Stderr, g.LogFormat, g.Verbose)
			if err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			g.Log = l
			return nil
		},
	}
	root.SetIn(g.Stdin)
	root.SetOut(g.Stdout)
	root.SetErr(g.Stderr)
	pf := root.PersistentFlags()
	pf.IntVarP(&g.Port, "port", "p", 0, "SSH port of the target (default 22, or Port from ~/.ssh/config)")
	pf.StringArrayVarP(&g.Identities, "identity", "i", nil, "SSH private key file (repeatable)")
	pf.StringArrayVarP(&g.Options, "option", "o", nil, "SSH option KEY=VALUE as in ssh_config (repeatable): UserKnownHostsFile, StrictHostKeyChecking, Port, User, IdentityFile, IdentitiesOnly, ConnectTimeout, ProxyJump")
	pf.BoolVar(&g.Sudo, "sudo", false, "run the agent as root through sudo or doas when the login user is not root")
	pf.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")
	pf.CountVarP(&g.Verbose, "verbose", "v", "more output (-vv for trace)")
	pf.BoolVar(&g.Yes, "yes", false, "answer yes to every confirmation")
	pf.BoolVar(&g.EnvPassword, "env-password", false, "use the SSH password in $SSHPASS")
	for _, f := range verbs {
		root.AddCommand(f(g))
	}
	sort.Slice(root.Commands(), func(i, j int) bool { return root.Commands()[i].Name() < root.Commands()[j].Name() })
	return root
}

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &Globals{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := NewRoot(g)
	root.SetArgs(pairFlags(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := exitcode.Of(err)
	if code == exitcode.Failure && isUsageError(err) {
		code = exitcode.Usage
	}
	var inv *config.InvalidError
	if errors.As(err, &inv) {
		// The report was printed by the command; keep the last line short.
		code = exitcode.Usage
	}
	if g.Log != nil && g.LogFormat == "json" {
		g.Log.WithField("exit_code", int(code)).WithField("category", code.String()).Error(err.Error())
	} else {
		fmt.Fprintf(stderr, "nivis: error: %v\n", err)
	}
	return int(code)
}

// isUsageError recognises cobra's own argument and flag errors.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "unknown command", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if len(msg) >= len(p) && contains(msg, p) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// stdinIsTerminal reports whether the user can answer a prompt.
func (g *Globals) stdinIsTerminal() bool {
	f, ok := g.Stdin.(*os.File)
	return ok && logging.IsTerminal(f)
}
