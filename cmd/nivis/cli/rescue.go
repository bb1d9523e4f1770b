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
			ctx := cmd.Context()
			t := &takeover.Takeover{Dial: g.dialer(args[0]), Log: g.Log, Out: g.Stderr}
			var timings []takeover.Timing
			defer func() {
				if len(timings) > 0 {
					fmt.Fprintf(g.Stderr, "\nphases:\n%s", takeover.Summary(timings))
				}
			}()
			var opts takeover.KexecOptions
			phases := []takeover.Phase{
				{Name: "facts", Run: func(ctx context.Context) error {
					f, err := t.Connect(ctx)
					if err != nil {
						return err
					}
					g.Log.WithField("os", f.OS.PrettyName).WithField("kernel", f.Kernel.Release).
						WithField("memory_mib", f.Memory.TotalBytes>>20).Info("host facts gathered")
					return nil
				}},
				{Name: "preflight", Run: func(ctx context.Context) error {
					if t.InRescue() && !kf.force {
						return nil
					}
					var err error
					if opts, err = kf.options(ctx, t.Conn().(*Session)); err != nil {
						return err
					}
					_, err = t.Preflight(ctx, opts)
					return err
				}},
				{Name: "kexec", Run: func(ctx context.Context) error {
					if t.InRescue() && !kf.force {
						g.Log.Info("the host already runs the nivis rescue system; not kexecing again (use --force-kexec to)")
						return nil
					}
					_, err := t.Kexec(ctx, opts)
					return err
				}},
			}
			var err error
			timings, err = takeover.Sequence(ctx, g.Log, phases, nil)
			if err != nil {
				return err
			}
			defer t.Close()
			if kf.noWait {
				fmt.Fprintln(g.Stdout, "kexec scheduled; the host boots into the nivis rescue system")
				return nil
			}
			s, ok := t.Conn().(*Session)
			if !ok {
				return exitcode.Errorf(exitcode.Failure, "internal: no session after rescue")
			}
			rescueBanner(g, s, kf.postPort)
			return nil
		},
	}
	kf.add(cmd, false)
	return cmd
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
			ctx := cmd.Context()
			if kf.kernel == "" {
				return exitcode.Errorf(exitcode.Usage, "--kernel is required (use `nivis rescue` for the nivis rescue system)")
			}
			t := &takeover.Takeover{Dial: g.dialer(args[0]), Log: g.Log, Out: g.Stderr}
			defer t.Close()
			if _, err := t.Connect(ctx); err != nil {
				return err
			}
			opts, err := kf.options(ctx, t.Conn().(*Session))
			if err != nil {
				return err
			}
			if _, err := t.Preflight(ctx, opts); err != nil {
				return err
			}
			prep, err := t.Kexec(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Stdout, "kexec'd into %s (%s) with command line: %s\n", prep.Kernel, prep.Method, prep.Cmdline)
			return nil
		},
	}
	kf.add(cmd, true)
	return cmd
}
