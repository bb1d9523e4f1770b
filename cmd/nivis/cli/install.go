package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/internal/progress"
	"github.com/nivis/nivis/takeover"
	"github.com/nivis/nivis/takeover/install"
)

func newInstallCmd(g *Globals) *cobra.Command {
	o := &installFlags{}
	cmd := &cobra.Command{
		Use:   "install TARGET -c host.yaml",
		Short: "Turn a running host into the declared system and verify it came back",
		Long: `install takes a host over: it kexecs it into the in-RAM nivis rescue system
(keeping its network and SSH identity), partitions and formats its disks from the
config's disko layout, installs the system (a rootfs tarball, an OCI image or a raw
image), writes fstab, hostname, machine-id, keys and network configuration,
installs the bootloader, reboots and checks that the installed system answers.

Phases (--phases, any subset, run in this order): kexec, disko, install, reboot.
Each is idempotent: after a failure, resume with e.g. --phases install,reboot
while the host is still in the rescue system. If the bootloader step fails, the
host is NOT rebooted.`,
		Example: `  nivis install root@203.0.113.7 -c host.yaml --dry-run
  nivis install root@203.0.113.7 -c host.yaml --copy-host-keys --yes
  nivis install web1 -c host.yaml --phases install,reboot`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInstall(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.cfgFile, "config", "c", "", "host config (kind: Host)")
	f.StringVar(&o.phases, "phases", "", "phases to run, in order: kexec,disko,install,reboot (default all)")
	f.StringVar(&o.diskoMode, "disko-mode", "destroy,format,mount", "destroy,format,mount | format,mount | mount")
	f.BoolVar(&o.copyKeys, "copy-host-keys", false, "give the installed system the host's current SSH host keys")
	f.StringVar(&o.extraFiles, "extra-files", "", "directory copied into the installed system's root")
	f.StringArrayVar(&o.chowns, "chown", nil, "PATH UID:GID: chown -R PATH (from --extra-files) in the installed system; two arguments (repeatable)")
	f.StringArrayVar(&o.diskKeys, "disk-encryption-keys", nil, "REMOTE LOCAL: write the local file LOCAL to REMOTE on the host before disko; two arguments (repeatable)")
	f.BoolVar(&o.noReboot, "no-reboot", false, "stay in the rescue system after installing")
	f.BoolVar(&o.kexecBoot, "kexec-boot", false, "kexec straight into the installed kernel instead of rebooting through the firmware")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the host's facts, the disk plan, the source and the bootloader, and stop")
	o.kf.add(cmd, false)
	return cmd
}

// installFlags are `nivis install`'s flags.
type installFlags struct {
	kf         kexecFlags
	cfgFile    string
	phases     string
	diskoMode  string
	copyKeys   bool
	extraFiles string
	chowns     []string
	kexecBoot  bool
	diskKeys   []string
	noReboot   bool
	dryRun     bool
}

// runInstall is `nivis install TARGET -c host.yaml`.
func runInstall(ctx context.Context, g *Globals, target string, o *installFlags) error {
	if o.cfgFile == "" {
		return exitcode.Errorf(exitcode.Usage, "-c host.yaml is required (kind: Host)")
	}
	l, rep, err := config.LoadKind(o.cfgFile, "Host")
	for _, e := range rep.Entries {
		if e.Severity == config.SevWarning || err != nil {
			fmt.Fprintf(g.Stderr, "%s: %s\n", o.cfgFile, e)
		}
	}
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	hc := l.Obj.(*takeover.HostConfig)
	only, err := takeover.ParsePhases(o.phases, takeover.InstallPhases)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	opts, err := o.installOptions(g)
	if err != nil {
		return err
	}
	t, _ := g.newTakeover(target)
	in := &takeover.Install{Takeover: t, Config: hc, Opts: opts}
	defer in.Close()
	timings, err := in.Run(ctx, g.opLog(), only)
	if len(timings) > 0 {
		fmt.Fprintf(g.Stderr, "\nphases:\n%s", takeover.Summary(timings))
	}
	if err != nil {
		return err
	}
	if o.dryRun {
		fmt.Fprintln(g.Stdout, "dry run: nothing was changed")
		return nil
	}
	in.Summary(g.Stdout)
	return nil
}

// installOptions checks the flags and turns them into takeover options.
func (o *installFlags) installOptions(g *Globals) (takeover.InstallOptions, error) {
	opts := takeover.InstallOptions{
		DiskoMode: o.diskoMode, CopyHostKeys: o.copyKeys, ExtraFiles: o.extraFiles,
		NoReboot: o.noReboot, DryRun: o.dryRun, Confirm: g.Confirm, KexecBoot: o.kexecBoot,
		Kexec: o.kf.options(),
	}
	raw, _ := os.ReadFile(o.cfgFile)
	opts.Kexec.Config = string(raw)
	if o.extraFiles != "" {
		if st, err := os.Stat(o.extraFiles); err != nil || !st.IsDir() {
			return opts, exitcode.Errorf(exitcode.Usage, "--extra-files %s: not a directory", o.extraFiles)
		}
	}
	for _, c := range o.chowns {
		ch, err := parseChown(c)
		if err != nil {
			return opts, err
		}
		opts.Chown = append(opts.Chown, ch)
	}
	for _, v := range o.diskKeys {
		remote, local, ok := splitPair(v)
		if !ok || !strings.HasPrefix(remote, "/") {
			return opts, exitcode.Errorf(exitcode.Usage, "--disk-encryption-keys %q: want REMOTE LOCAL, REMOTE an absolute path on the host (e.g. --disk-encryption-keys /tmp/secret.key ./secret.key)", strings.ReplaceAll(v, pairSep, " "))
		}
		data, err := os.ReadFile(local)
		if err != nil {
			return opts, exitcode.Errorf(exitcode.Usage, "--disk-encryption-keys %s %s: %v", remote, local, err)
		}
		opts.DiskKeys = append(opts.DiskKeys, install.SecretFile{Path: remote, Data: data})
	}
	var bar *progress.Bar
	opts.Progress = func(done, total int64) {
		if bar == nil {
			bar = progress.New(g.progressWriter(), "upload system", total)
		}
		bar.Set(done, total)
		if done >= total {
			bar.Finish(nil)
		}
	}
	opts.ReportPlan = func(p *disko.Plan) {
		fmt.Fprintln(g.Stdout, "disk plan:")
		p.Render(g.Stdout)
	}
	opts.ReportFacts = func(f *facts.Facts) {
		fmt.Fprintln(g.Stdout, "host facts:")
		_ = f.WriteTable(g.Stdout)
	}
	return opts, nil
}

func parseChown(v string) (install.Chown, error) {
	p, owner, ok := splitPair(v)
	uid, gid, ok2 := strings.Cut(owner, ":")
	u, err1 := strconv.Atoi(uid)
	gg, err2 := strconv.Atoi(gid)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return install.Chown{}, exitcode.Errorf(exitcode.Usage, "--chown %s: want PATH UID:GID with numeric ids (e.g. --chown /home/alice 1000:100)", strings.ReplaceAll(v, pairSep, " "))
	}
	return install.Chown{Path: p, UID: u, GID: gg}, nil
}
