package takeover

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
	"github.com/nivis/nivis/internal/oplog"
	"github.com/nivis/nivis/rescue"
	"github.com/nivis/nivis/takeover/install"
)

// InstallPhases are the phases of `nivis install`, in order.
var InstallPhases = []string{"kexec", "disko", "install", "reboot"}

// TargetRoot is where the new system is mounted in the rescue system.
const TargetRoot = "/mnt"

// InstallOptions are `nivis install`'s settings beyond the config.
type InstallOptions struct {
	Kexec        KexecOptions
	DiskoMode    string // default destroy,format,mount
	CopyHostKeys bool
	ExtraFiles   string
	Chown        []install.Chown
	// DiskKeys are --disk-encryption-keys REMOTE LOCAL pairs: written on
	// the host before disko runs.
	DiskKeys   []install.SecretFile
	NoReboot   bool
	KexecBoot  bool
	DryRun     bool
	Confirm    func(question, want string) error
	ReportPlan func(p *disko.Plan)
	// ReportFacts gets the host's facts before anything runs (dry run).
	ReportFacts func(f *facts.Facts)
	// Progress gets the source upload's bytes read so far.
	Progress func(done, total int64)
}

// Install is one `nivis install` run.
type Install struct {
	*Takeover
	Config *HostConfig
	Opts   InstallOptions

	fstab, crypttab string
}

// Run connects, completes the kexec options from the connection and runs
// the phases selected by only (all when empty) through log.
func (in *Install) Run(ctx context.Context, log *oplog.Log, only map[string]bool) ([]Timing, error) {
	f, err := in.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if in.Opts.DryRun && in.Opts.ReportFacts != nil {
		in.Opts.ReportFacts(f)
	}
	if in.Opts.Kexec, err = in.complete(ctx, in.Opts.Kexec); err != nil {
		return nil, err
	}
	return Sequence(ctx, log, in.Phases(), only)
}

// Phases builds the named phases; run them with Sequence.
func (in *Install) Phases() []Phase {
	return []Phase{
		{Name: "kexec", Run: in.kexec},
		{Name: "disko", Run: in.disko},
		{Name: "install", Run: in.install},
		{Name: "reboot", Run: in.reboot},
	}
}

func (in *Install) kexec(ctx context.Context) error {
	if in.InRescue() && !in.Opts.Kexec.Force {
		in.Log.Info("the host already runs the nivis rescue system: not kexecing again")
		return nil
	}
	o := in.Opts.Kexec
	o.Features = in.Config.Features()
	if _, err := in.Preflight(ctx, o); err != nil {
		return err
	}
	if in.Opts.DryRun {
		return nil
	}
	_, err := in.Kexec(ctx, o)
	return err
}

func (in *Install) diskoRequest(mode string) (*disko.AgentRequest, error) {
	layout, err := in.Config.LayoutJSON()
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Usage, err)
	}
	return &disko.AgentRequest{Layout: layout, Mode: mode, Root: TargetRoot, AllowRootDisk: true, Tables: true}, nil
}

func (in *Install) disko(ctx context.Context) error {
	if in.Config.System.Format == "raw" {
		in.Log.Info("raw image: no disk layout to apply")
		return nil
	}
	if !in.InRescue() && !in.Opts.DryRun && in.after == nil {
		return exitcode.Errorf(exitcode.Precondition, "the host does not run the nivis rescue system: run the kexec phase first (or `nivis rescue`)")
	}
	if len(in.Opts.DiskKeys) > 0 && !in.Opts.DryRun {
		if _, err := install.VerbSecrets.Call(ctx, in.conn, &install.SecretsRequest{Files: in.Opts.DiskKeys}); err != nil {
			return err
		}
	}
	mode := in.Opts.DiskoMode
	if mode == "" {
		mode = "destroy,format,mount"
	}
	req, err := in.diskoRequest(mode)
	if err != nil {
		return err
	}
	req.DryRun = true
	plan, err := disko.VerbDisko.Call(ctx, in.conn, req)
	if err != nil {
		return err
	}
	if plan.Plan != nil && in.Opts.ReportPlan != nil {
		in.Opts.ReportPlan(plan.Plan)
	}
	if in.Opts.DryRun {
		return nil
	}
	if plan.Plan != nil && len(plan.Plan.Destroys()) > 0 && in.Opts.Confirm != nil {
		var names []string
		for _, d := range plan.Plan.Destroys() {
			names = append(names, d.Device)
		}
		if err := in.Opts.Confirm(fmt.Sprintf("This DESTROYS everything on %s.", strings.Join(names, ", ")), "yes"); err != nil {
			return err
		}
	}
	req.DryRun = false
	res, err := disko.VerbDisko.Call(ctx, in.conn, req)
	if err != nil {
		return exitcode.Wrap(exitcode.Change, err)
	}
	in.fstab, in.crypttab = res.Fstab, res.Crypttab
	return nil
}

// tables gets fstab/crypttab when the disko phase did not run in this
// invocation (--phases install,...): mounting again is a no-op.
func (in *Install) tables(ctx context.Context) error {
	if in.fstab != "" || in.Config.Layout == nil {
		return nil
	}
	req, err := in.diskoRequest("mount")
	if err != nil {
		return err
	}
	res, err := disko.VerbDisko.Call(ctx, in.conn, req)
	if err != nil {
		return err
	}
	in.fstab, in.crypttab = res.Fstab, res.Crypttab
	return nil
}

func (in *Install) install(ctx context.Context) error {
	if in.Opts.DryRun {
		into := TargetRoot
		if in.Config.System.Format == install.FormatRaw {
			into = in.Config.System.Device + " (the whole disk is overwritten)"
		}
		fmt.Fprintf(in.Out, "install: %s (%s) into %s, bootloader %s (firmware %s), network %s\n",
			in.Config.System.Source, in.Config.System.Format, into, in.Config.Bootloader, in.Config.Firmware, in.Config.Network)
		return nil
	}
	if err := in.tables(ctx); err != nil {
		return err
	}
	if err := in.pushSource(ctx); err != nil {
		return err
	}
	if in.Config.System.Format == "raw" {
		return nil
	}
	if in.Opts.ExtraFiles != "" {
		tr := install.ExtraFilesTar(in.Opts.ExtraFiles)
		defer tr.Close()
		if _, err := install.Push(ctx, in.conn, install.ExtractRequest{Root: TargetRoot, Extra: true}, tr, install.PushOptions{}); err != nil {
			return exitcode.Wrap(exitcode.Change, fmt.Errorf("extra files: %w", err))
		}
	}
	fin := install.FinalizeOptions{
		Root: TargetRoot, Hostname: in.Config.Hostname, Fstab: in.fstab, Crypttab: in.crypttab,
		AuthorizedKeys: in.Config.RootAuthorizedKeys, Network: in.Config.Network, Chown: in.Opts.Chown,
	}
	if in.Opts.CopyHostKeys || in.Config.CopyHostKeys {
		fin.HostKeyDir = "/nivis/hostkeys"
	}
	fres, err := install.VerbFinalize.Call(ctx, in.conn, &fin)
	if err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("finalize: %w", err))
	}
	for _, w := range fres.Warnings {
		in.Log.Warn(w)
	}
	boot := install.BootloaderOptions{Root: TargetRoot, Kind: in.Config.Bootloader}
	if in.Config.Firmware != "auto" {
		boot.Firmware = in.Config.Firmware
	}
	if in.Config.BootloaderCommand != "" {
		boot.Command = []string{"/bin/sh", "-c", in.Config.BootloaderCommand}
	}
	bres, err := install.VerbBootloader.Call(ctx, in.conn, &boot)
	if err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("bootloader (the host will NOT be rebooted; fix it and resume with --phases install,reboot): %w", err))
	}
	for _, w := range bres.Warnings {
		in.Log.Warn("bootloader: " + w)
	}
	if bres.RootArg != "" {
		in.Log.WithField("root", bres.RootArg).Info("bootloader installed")
	}
	return nil
}

func (in *Install) pushSource(ctx context.Context) error {
	sys := in.Config.System
	req := install.ExtractRequest{Root: TargetRoot, Format: sys.Format}
	if sys.Format == "raw" {
		req.Root = ""
		req.Device = sys.Device
		if req.Device == "" {
			return exitcode.Errorf(exitcode.Usage, "system.device is required for a raw image: the disk to write it to")
		}
	}
	if strings.HasPrefix(sys.Source, "https://") {
		fr := install.FetchRequest{ExtractRequest: req, URL: sys.Source, SHA256: sys.SHA256}
		if sys.CAFile != "" {
			ca := sys.CAFile
			if !filepath.IsAbs(ca) {
				ca = filepath.Join(in.Config.Dir, ca)
			}
			b, err := os.ReadFile(ca)
			if err != nil {
				return exitcode.Wrap(exitcode.Usage, err)
			}
			fr.CAPEM = string(b)
		}
		if _, err := install.VerbFetch.Call(ctx, in.conn, &fr); err != nil {
			return exitcode.Wrap(exitcode.Change, err)
		}
		return nil
	}
	path := sys.Source
	if !filepath.IsAbs(path) {
		path = filepath.Join(in.Config.Dir, path)
	}
	if sys.Format == install.FormatOCI {
		return in.pushImage(ctx, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return exitcode.Wrap(exitcode.Usage, err)
	}
	defer f.Close()
	st, _ := f.Stat()
	total := st.Size()
	start := time.Now()
	res, err := install.Push(ctx, in.conn, req, f, install.PushOptions{
		OnRead: func(n int64) {
			if in.Opts.Progress != nil {
				in.Opts.Progress(n, total)
			}
		},
	})
	if in.Opts.Progress != nil {
		in.Opts.Progress(total, total)
	}
	if err != nil {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("install the system from %s: %w", sys.Source, err))
	}
	in.Log.WithFields(logrus.Fields{
		"files": res.Stats.Files, "wire_mib": res.Received >> 20, "seconds": time.Since(start).Round(time.Second).Seconds(),
	}).Info("system extracted")
	return nil
}

// pushImage sends an OCI layout or image archive the client has at hand
// layer by layer, in order: the host applies each with its whiteouts and
// never needs room for the image's blobs.
func (in *Install) pushImage(ctx context.Context, path string) error {
	arch := ""
	if f := in.Facts(); f != nil {
		arch = f.Arch
	}
	im, err := install.OpenImage(path, arch)
	if err != nil {
		return err
	}
	defer im.Close()
	var total, base int64
	for _, l := range im.Layers {
		total += l.Size
	}
	start := time.Now()
	var files int64
	for i, l := range im.Layers {
		rc, err := l.Open()
		if err != nil {
			return exitcode.Wrap(exitcode.Usage, err)
		}
		n := i
		req := install.ExtractRequest{Root: TargetRoot, Format: install.FormatTar, Layer: &n}
		res, err := install.Push(ctx, in.conn, req, rc, install.PushOptions{
			OnRead: func(done int64) {
				if in.Opts.Progress != nil && base+done < total {
					in.Opts.Progress(base+done, total)
				}
			},
		})
		rc.Close()
		if err != nil {
			return exitcode.Wrap(exitcode.Change, fmt.Errorf("install layer %d (%s) of %s: %w", i, l.Digest, in.Config.System.Source, err))
		}
		base += l.Size
		files += res.Stats.Files
	}
	if in.Opts.Progress != nil {
		in.Opts.Progress(total, total)
	}
	in.Log.WithFields(logrus.Fields{
		"layers": len(im.Layers), "files": files, "seconds": time.Since(start).Round(time.Second).Seconds(),
	}).Info("image extracted")
	return nil
}

func (in *Install) reboot(ctx context.Context) error {
	if in.Opts.DryRun {
		return nil
	}
	if in.Opts.NoReboot {
		in.Log.Info("--no-reboot: leaving the host in the rescue system with the new system mounted at " + TargetRoot)
		return nil
	}
	if in.Opts.KexecBoot {
		// The kernel is read now, while the target is still mounted.
		kres, err := install.VerbKexecBoot.Call(ctx, in.conn, &install.KexecBootRequest{Root: TargetRoot})
		if err != nil {
			return err
		}
		in.Log.WithFields(logrus.Fields{"kernel": kres.Kernel, "cmdline": kres.Cmdline, "method": kres.Method}).Info("--kexec-boot: the installed kernel is loaded")
	}
	if in.Config.Layout != nil {
		req, err := in.diskoRequest("unmount")
		if err == nil {
			if _, err := disko.VerbDisko.Call(ctx, in.conn, req); err != nil {
				in.Log.Warnf("unmount before reboot: %v", err)
			}
		}
	}
	rebootReq := &rescue.RebootRequest{DelaySeconds: 2, Kexec: in.Opts.KexecBoot}
	if _, err := rescue.VerbReboot.Call(ctx, in.conn, rebootReq); err != nil {
		return exitcode.Wrap(exitcode.Change, err)
	}
	_ = in.conn.Close()
	in.conn = nil
	boot := in.after
	old := ""
	if boot != nil {
		old = boot.BootID
	} else if in.before != nil {
		old = in.before.BootID
	}
	expect := in.hostKey
	if !(in.Opts.CopyHostKeys || in.Config.CopyHostKeys) {
		expect = nil // a new system has new host keys
	}
	c, f, err := WaitForNewBoot(ctx, in.Dial, WaitOptions{
		OldBootID: old, HostKey: expect, Deadline: in.Opts.Kexec.WaitTimeout, Out: in.Out,
	})
	if err != nil {
		return err
	}
	in.conn = c
	if f.NivisRescue {
		return exitcode.Errorf(exitcode.Change, "the host came back into the rescue system, not the installed one: check the bootloader")
	}
	if in.Config.Hostname != "" && f.Hostname != in.Config.Hostname {
		return exitcode.Errorf(exitcode.Change, "the host came back as %q, not %q", f.Hostname, in.Config.Hostname)
	}
	in.Log.WithField("os", f.OS.PrettyName).WithField("hostname", f.Hostname).Info("the installed system is up")
	in.final = f
	return nil
}

// Summary writes what the user should see at the end.
func (in *Install) Summary(w io.Writer) {
	if in.final == nil {
		return
	}
	f := in.final
	fmt.Fprintf(w, "\ninstalled: %s (%s), hostname %s, kernel %s\n", f.OS.PrettyName, f.Arch, f.Hostname, f.Kernel.Release)
	for _, d := range f.Disks {
		for _, p := range d.Partitions {
			for _, m := range p.Mounts {
				fmt.Fprintf(w, "  %-12s %-8s %s\n", p.Path, m.FSType, m.Mountpoint)
			}
		}
	}
}
