package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/takeover"
)

func newRescueCmd(g *Globals) *cobra.Command {
	var kf kexecFlags
	cmd := &cobra.Command{
		Use:   "rescue TARGET",
		Short: "Kexec a host into the in-RAM nivis rescue system, keeping its network and SSH identity",
		Long: `rescue kexecs the host into a small rescue system that runs from RAM: the
host's own kernel, a u-root userland, the nivis agent and the tools its disks
need. Its addresses, routes, DNS, SSH port and SSH host keys are carried over, so
you log in exactly as before (known_hosts keeps working). The disks are not
touched. If no client connects within --rescue-timeout, the rescue system
reboots into the host's old system.

Phases: facts -> preflight (RAM, lockdown, kexec allowed, kernel readable) ->
assemble the image on the host -> kexec -> wait for a new boot_id -> verify the
same host key.`,
		Example: `  nivis rescue root@203.0.113.7
  nivis rescue web1 --post-kexec-ssh-port 2222 --rescue-timeout 30m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRescue(cmd.Context(), g, args[0], kf.options())
		},
	}
	kf.add(cmd, false)
	return cmd
}

// runRescue is `nivis rescue TARGET`.
func runRescue(ctx context.Context, g *Globals, target string, o takeover.KexecOptions) error {
	t, d := g.newTakeover(target)
	defer t.Close()
	timings, err := takeover.Sequence(ctx, g.opLog(), t.RescuePhases(o), nil)
	if len(timings) > 0 {
		fmt.Fprintf(g.Stderr, "\nphases:\n%s", takeover.Summary(timings))
	}
	if err != nil {
		return err
	}
	if o.NoWait {
		fmt.Fprintln(g.Stdout, "kexec scheduled; the host boots into the nivis rescue system")
		return nil
	}
	if d.last == nil {
		return exitcode.Errorf(exitcode.Failure, "internal: no session after rescue")
	}
	rescueBanner(g, d.last, o.PostKexecSSHPort)
	return nil
}

func newKexecCmd(g *Globals) *cobra.Command {
	var kf kexecFlags
	cmd := &cobra.Command{
		Use:   "kexec TARGET --kernel FILE [--initrd FILE] [--append ARGS]",
		Short: "Kexec a host into a custom kernel and initrd",
		Long: `kexec uploads a kernel and an initrd to the host's tmpfs, loads them with
kexec_file_load (falling back to kexec_load) and boots them; the console=
arguments of the current command line are kept. It waits until the host
answers SSH again with a new boot_id and the same host key (the booted system
must run sshd with the host's keys and a nivis-compatible shell; otherwise
pass --wait-timeout 0 to not wait).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKexec(cmd.Context(), g, args[0], kf.options())
		},
	}
	kf.add(cmd, true)
	return cmd
}

// runKexec is `nivis kexec TARGET --kernel FILE`.
func runKexec(ctx context.Context, g *Globals, target string, o takeover.KexecOptions) error {
	if o.KernelFile == "" {
		return exitcode.Errorf(exitcode.Usage, "--kernel is required (use `nivis rescue` for the nivis rescue system)")
	}
	t, _ := g.newTakeover(target)
	defer t.Close()
	prep, err := t.CustomKexec(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "kexec'd into %s (%s) with command line: %s\n", prep.Kernel, prep.Method, prep.Cmdline)
	return nil
}
