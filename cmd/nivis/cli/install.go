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
	"github.com/nivis/nivis/internal/progress"
	"github.com/nivis/nivis/takeover"
	"github.com/nivis/nivis/takeover/install"
)

// AgentCommand ensures the agent and returns the command that starts it,
// for streaming verbs that bypass Call.
func (s *Session) AgentCommand(ctx context.Context) (string, error) {
	if err := s.Agent(ctx); err != nil {
		return "", err
	}
	return s.AgentCmd, nil
}

func newInstallCmd(g *Globals) *cobra.Command {
	var (
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
	)
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
			ctx := cmd.Context()
			if cfgFile == "" {
				return exitcode.Errorf(exitcode.Usage, "-c host.yaml is required (kind: Host)")
			}
			l, rep, err := config.LoadKind(cfgFile, "Host")
			for _, e := range rep.Entries {
				if e.Severity == config.SevWarning || err != nil {
					fmt.Fprintf(g.Stderr, "%s: %s\n", cfgFile, e)
				}
			}
			if err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			hc := l.Obj.(*takeover.HostConfig)
			only, err := takeover.ParsePhases(phases, takeover.InstallPhases)
			if err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			opts := takeover.InstallOptions{
				DiskoMode: diskoMode, CopyHostKeys: copyKeys, ExtraFiles: extraFiles,
				NoReboot: noReboot, DryRun: dryRun, Confirm: g.Confirm, KexecBoot: kexecBoot,
			}
			if extraFiles != "" {
				if st, err := os.Stat(extraFiles); err != nil || !st.IsDir() {
					return exitcode.Errorf(exitcode.Usage, "--extra-files %s: not a directory", extraFiles)
				}
			}
			for _, c := range chowns {
				ch, err := parseChown(c)
				if err != nil {
					return err
				}
				opts.Chown = append(opts.Chown, ch)
			}
			for _, v := range diskKeys {
				remote, local, ok := splitPair(v)
				if !ok || !strings.HasPrefix(remote, "/") {
					return exitcode.Errorf(exitcode.Usage, "--disk-encryption-keys %q: want REMOTE LOCAL, REMOTE an absolute path on the host (e.g. --disk-encryption-keys /tmp/secret.key ./secret.key)", strings.ReplaceAll(v, pairSep, " "))
				}
				data, err := os.ReadFile(local)
				if err != nil {
					return exitcode.Errorf(exitcode.Usage, "--disk-encryption-keys %s %s: %v", remote, local, err)
				}
				opts.DiskKeys = append(opts.DiskKeys, install.SecretFile{Path: remote, Data: data})
			}
			raw, _ := os.ReadFile(cfgFile)
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
			in := &takeover.Install{
				Takeover: &takeover.Takeover{Dial: g.dialer(args[0]), Log: g.Log, Out: g.Stderr},
				Config:   hc, Opts: opts,
			}
			defer in.Close()
			f, err := in.Connect(ctx)
			if err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintln(g.Stdout, "host facts:")
				_ = f.WriteTable(g.Stdout)
			}
			ko, err := kf.options(ctx, in.Conn().(*Session))
			if err != nil {
				return err
			}
			ko.Config = string(raw)
			in.Opts.Kexec = ko
			timings, err := takeover.Sequence(ctx, g.Log, in.Phases(), only)
			fmt.Fprintf(g.Stderr, "\nphases:\n%s", takeover.Summary(timings))
			if err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintln(g.Stdout, "dry run: nothing was changed")
				return nil
			}
			in.Summary(g.Stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgFile, "config", "c", "", "host config (kind: Host)")
	f.StringVar(&phases, "phases", "", "phases to run, in order: kexec,disko,install,reboot (default all)")
	f.StringVar(&diskoMode, "disko-mode", "destroy,format,mount", "destroy,format,mount | format,mount | mount")
	f.BoolVar(&copyKeys, "copy-host-keys", false, "give the installed system the host's current SSH host keys")
	f.StringVar(&extraFiles, "extra-files", "", "directory copied into the installed system's root")
	f.StringArrayVar(&chowns, "chown", nil, "PATH UID:GID: chown -R PATH (from --extra-files) in the installed system; two arguments (repeatable)")
	f.StringArrayVar(&diskKeys, "disk-encryption-keys", nil, "REMOTE LOCAL: write the local file LOCAL to REMOTE on the host before disko; two arguments (repeatable)")
	f.BoolVar(&noReboot, "no-reboot", false, "stay in the rescue system after installing")
	f.BoolVar(&kexecBoot, "kexec-boot", false, "kexec straight into the installed kernel instead of rebooting through the firmware")
	f.BoolVar(&dryRun, "dry-run", false, "print the host's facts, the disk plan, the source and the bootloader, and stop")
	kf.add(cmd, false)
	return cmd
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
