//go:build linux

package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/oplog"
)

// Mounter is the mount(2) edge, replaced in tests.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
}

type sysMounter struct{}

func (sysMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (sysMounter) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

// BootInstaller installs bootloaders; its fields are the edges to the
// outside world (real ones from NewBootInstaller).
type BootInstaller struct {
	Run   command.Runner
	Mount Mounter
	// DevDir is bound as the chroot's /dev and gets the by-uuid links.
	DevDir string
	SysDir string
	// Mountinfo returns /proc/self/mountinfo.
	Mountinfo func() ([]byte, error)
	// Probe returns a device's filesystem UUID and PARTUUID ("" unknown).
	Probe func(dev string) (fsUUID, partUUID string)
}

// NewBootInstaller returns the real thing, logging each tool it runs to log.
func NewBootInstaller(log *oplog.Log) *BootInstaller {
	b := &BootInstaller{Run: command.Exec{Log: log}, Mount: sysMounter{}, DevDir: "/dev", SysDir: "/sys",
		Mountinfo: func() ([]byte, error) { return os.ReadFile("/proc/self/mountinfo") }}
	b.Probe = func(dev string) (string, string) {
		u, _ := FSUUID(dev)
		p, _ := PartUUID(b.SysDir, dev)
		return u, p
	}
	return b
}

// InstallBootloader installs the bootloader o asks for with the real
// runner and mounts, logging each tool it runs to log.
func InstallBootloader(ctx context.Context, o BootloaderOptions, log *oplog.Log) (*BootloaderResult, error) {
	return NewBootInstaller(log).Install(ctx, o)
}

// Install runs the bootloader installation in a chroot of o.Root with
// /dev, /proc, /sys, /run (and efivarfs under UEFI) mounted, unmounting
// them afterwards, also on failure. It fails, with the tool's output, when a
// tool fails or the generated config does not name the root by UUID.
func (b *BootInstaller) Install(ctx context.Context, o BootloaderOptions) (res *BootloaderResult, err error) {
	res = &BootloaderResult{}
	rec := &toolRun{runner: b.Run, res: res}
	switch o.Kind {
	case BootNone:
		return res, nil
	case BootGrub, BootSystemdBoot:
	case BootCustom:
		if len(o.Command) == 0 {
			return res, exitcode.Errorf(exitcode.Usage, "bootloader custom needs a command")
		}
	default:
		return res, exitcode.Errorf(exitcode.Usage, "bootloader %q: use grub, systemd-boot, none or custom", o.Kind)
	}
	root := filepath.Clean(o.Root)
	mi, err := b.Mountinfo()
	if err != nil {
		return res, exitcode.Wrap(exitcode.Precondition, err)
	}
	mounts := ParseMountinfo(mi, root)
	var rootMount *Mount
	for i := range mounts {
		if mounts[i].Point == root {
			rootMount = &mounts[i]
		}
	}
	if rootMount == nil {
		return res, exitcode.Errorf(exitcode.Precondition, "nothing is mounted at %s: mount the target (disko mount phase) first", root)
	}
	firmware := o.Firmware
	if firmware == FirmwareAuto {
		firmware = FirmwareBIOS
		if _, err := os.Stat(filepath.Join(b.SysDir, "firmware/efi")); err == nil {
			firmware = FirmwareUEFI
		}
	}
	links := o.Links
	if len(links) == 0 {
		links = b.probeLinks(mounts)
	}
	if res.Links, err = b.makeLinks(links); err != nil {
		return res, exitcode.Wrap(exitcode.Change, err)
	}
	rootUUID := ""
	for _, l := range links {
		if l.Dir == "by-uuid" && sameDevice(l.Device, rootMount.Source) {
			rootUUID = l.Name
		}
	}
	efi := o.Kind == BootSystemdBoot || firmware == FirmwareUEFI || firmware == FirmwareBoth
	undo, warns, err := b.chrootMounts(root, efi, mi)
	res.Warnings = append(res.Warnings, warns...)
	defer func() {
		if uerr := undo(); uerr != nil && err == nil {
			err = exitcode.Wrap(exitcode.Change, uerr)
		}
	}()
	if err != nil {
		return res, exitcode.Wrap(exitcode.Change, err)
	}
	switch o.Kind {
	case BootCustom:
		_, err = rec.run(ctx, command.Command{Argv: o.Command, Chroot: root})
	case BootGrub:
		err = b.grub(ctx, rec, o, root, firmware, mounts, rootMount)
	case BootSystemdBoot:
		err = b.systemdBoot(ctx, rec, o, root, mounts, rootUUID)
	}
	if err != nil {
		return res, exitcode.Wrap(exitcode.Change, fmt.Errorf("bootloader %s: %w; the host will not be rebooted: fix this and run the install phase again", o.Kind, err))
	}
	return res, nil
}

// toolRun runs the tools of one install and lists them in its result.
type toolRun struct {
	runner command.Runner
	res    *BootloaderResult
}

func (r *toolRun) run(ctx context.Context, c command.Command) ([]byte, error) {
	r.res.Commands = append(r.res.Commands, c)
	out, err := r.runner.Run(ctx, c)
	if err != nil {
		// The log has the whole output; the error keeps its end.
		cause := err
		var ce *command.Error
		if errors.As(err, &ce) {
			cause = ce.Err
		}
		return out, fmt.Errorf("`%s` failed: %w\n%s", command.Quote(c.Argv), cause, command.Tail(out, 30))
	}
	return out, nil
}

func sameDevice(a, b string) bool {
	if a == b {
		return true
	}
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

func (b *BootInstaller) probeLinks(mounts []Mount) []DiskLink {
	var out []DiskLink
	seen := map[string]bool{}
	for _, m := range mounts {
		if !strings.HasPrefix(m.Source, "/dev/") || seen[m.Source] {
			continue
		}
		seen[m.Source] = true
		u, p := b.Probe(m.Source)
		if u != "" {
			out = append(out, DiskLink{Dir: "by-uuid", Name: u, Device: m.Source})
		}
		if p != "" {
			out = append(out, DiskLink{Dir: "by-partuuid", Name: p, Device: m.Source})
		}
	}
	return out
}

// makeLinks creates udev-style links where no udev runs (the rescue
// system): grub-mkconfig only writes root=UUID= when the by-uuid link exists.
func (b *BootInstaller) makeLinks(links []DiskLink) ([]string, error) {
	var made []string
	for _, l := range links {
		if l.Dir != "by-uuid" && l.Dir != "by-partuuid" && l.Dir != "by-label" && l.Dir != "by-partlabel" {
			return made, fmt.Errorf("link directory %q is not a /dev/disk/by-* name", l.Dir)
		}
		if l.Name == "" || strings.ContainsAny(l.Name, "/\x00") || l.Name == "." || l.Name == ".." {
			return made, fmt.Errorf("bad link name %q", l.Name)
		}
		dir := filepath.Join(b.DevDir, "disk", l.Dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return made, err
		}
		p := filepath.Join(dir, l.Name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		target := l.Device
		if strings.HasPrefix(target, "/dev/") {
			target = "../../" + strings.TrimPrefix(target, "/dev/")
		}
		if err := os.Symlink(target, p); err != nil {
			return made, err
		}
		made = append(made, p)
	}
	return made, nil
}

// chrootMounts mounts what the bootloader tools need and returns the undo.
// Binds are made slaves so unmounting them never propagates to the host.
func (b *BootInstaller) chrootMounts(root string, efi bool, mountinfo []byte) (undoFn func() error, warnings []string, err error) {
	var done []string
	undo := func() error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			if err := b.Mount.Unmount(done[i], unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("unmount %s: %w", done[i], err))
			}
		}
		return errors.Join(errs...)
	}
	type m struct {
		src, dst, fstype string
		flags            uintptr
		optional         bool
	}
	list := []m{
		{b.DevDir, "dev", "", unix.MS_BIND | unix.MS_REC, false},
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, false},
		{b.SysDir, "sys", "", unix.MS_BIND | unix.MS_REC, false},
		{"/run", "run", "", unix.MS_BIND | unix.MS_REC, false},
	}
	efivars := filepath.Join(b.SysDir, "firmware/efi/efivars")
	if _, err := os.Stat(efivars); efi && err == nil && len(ParseMountinfo(mountinfo, "/sys/firmware/efi/efivars")) == 0 {
		// Optional: without it GRUB writes no NVRAM entry, and the
		// removable-media path nivis also installs still boots.
		list = append(list, m{"efivarfs", "sys/firmware/efi/efivars", "efivarfs", 0, true})
	}
	for _, x := range list {
		dst := filepath.Join(root, x.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return undo, warnings, err
		}
		if err := b.Mount.Mount(x.src, dst, x.fstype, x.flags, ""); err != nil {
			if x.optional {
				warnings = append(warnings, fmt.Sprintf("mount %s on %s: %v: no firmware boot entry will be written; the disk boots through EFI/BOOT/BOOT*.EFI", x.src, dst, err))
				continue
			}
			return undo, warnings, fmt.Errorf("mount %s on %s: %w", x.src, dst, err)
		}
		done = append(done, dst)
		if x.flags&unix.MS_BIND != 0 {
			if err := b.Mount.Mount("", dst, "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
				return undo, warnings, fmt.Errorf("make %s a slave mount: %w", dst, err)
			}
		}
	}
	return undo, warnings, nil
}

// grubTools finds grub-install/grub-mkconfig or the grub2-* spelling.
func grubTools(root string) (install, mkconfig, cfgDir string, updateGrub bool, err error) {
	if _, e := command.LookPathIn(root, "grub-install"); e == nil {
		_, ue := command.LookPathIn(root, "update-grub")
		return "grub-install", "grub-mkconfig", "/boot/grub", ue == nil, nil
	}
	if _, e := command.LookPathIn(root, "grub2-install"); e == nil {
		return "grub2-install", "grub2-mkconfig", "/boot/grub2", false, nil
	}
	return "", "", "", false, errors.New("grub-install is not in the installed system: install GRUB in the image (Debian: grub-pc-bin or grub-efi-amd64-bin, and grub2-common)")
}

func efiTarget() string {
	switch runtime.GOARCH {
	case "arm64":
		return "arm64-efi"
	case "386":
		return "i386-efi"
	case "riscv64":
		return "riscv64-efi"
	case "loong64":
		return "loongarch64-efi"
	}
	return "x86_64-efi"
}

// espPath is the ESP's mount point as seen inside the chroot.
func espPath(o BootloaderOptions, root string, mounts []Mount) string {
	if o.ESP != "" {
		return "/" + strings.TrimPrefix(path.Clean("/"+o.ESP), "/")
	}
	for _, p := range []string{"/boot/efi", "/efi", "/boot"} {
		for _, m := range mounts {
			if m.Point == filepath.Join(root, p) && m.FSType == "vfat" {
				return p
			}
		}
	}
	return "/boot/efi"
}

func osID(root string) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "ID="); ok {
				v = strings.Trim(v, `"'`)
				if v != "" && !strings.ContainsAny(v, "/ ") {
					return v
				}
			}
		}
	}
	return "linux"
}

func (b *BootInstaller) efivarsWritable(root string) bool {
	_, err := os.Stat(filepath.Join(root, "sys/firmware/efi/efivars"))
	if err != nil {
		return false
	}
	ents, err := os.ReadDir(filepath.Join(root, "sys/firmware/efi/efivars"))
	return err == nil && len(ents) > 0
}

func (b *BootInstaller) grub(ctx context.Context, rec *toolRun, o BootloaderOptions, root, firmware string, mounts []Mount, rootMount *Mount) error {
	install, mkconfig, cfgDir, updateGrub, err := grubTools(root)
	if err != nil {
		return err
	}
	if firmware == FirmwareBIOS || firmware == FirmwareBoth {
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "386" {
			return fmt.Errorf("GRUB for BIOS exists only on x86; use firmware uefi")
		}
		disks := o.Disks
		if len(disks) == 0 {
			disk, _ := partitionOf(b.SysDir, rootMount.Source)
			if disk == "" {
				return fmt.Errorf("cannot tell which disk holds the root (%s): name the disks for GRUB's boot code", rootMount.Source)
			}
			disks = []string{disk}
		}
		for _, d := range disks {
			if _, err := rec.run(ctx, command.Command{Argv: []string{install, "--target=i386-pc", d}, Chroot: root}); err != nil {
				return err
			}
		}
	}
	if firmware == FirmwareUEFI || firmware == FirmwareBoth {
		esp := espPath(o, root, mounts)
		id := o.BootloaderID
		if id == "" {
			id = osID(root)
		}
		argv := []string{install, "--target=" + efiTarget(), "--efi-directory=" + esp, "--bootloader-id=" + id}
		if !b.efivarsWritable(root) {
			argv = append(argv, "--no-nvram")
		}
		if _, err := rec.run(ctx, command.Command{Argv: argv, Chroot: root}); err != nil {
			return err
		}
		// Also the fallback path EFI/BOOT/BOOT<arch>.EFI, which firmware
		// without (or with lost) NVRAM entries boots.
		if _, err := rec.run(ctx, command.Command{Argv: []string{install, "--target=" + efiTarget(), "--efi-directory=" + esp, "--removable", "--no-nvram"}, Chroot: root}); err != nil {
			return err
		}
	}
	cfg := cfgDir + "/grub.cfg"
	argv := []string{mkconfig, "-o", cfg}
	if updateGrub {
		argv = []string{"update-grub"}
	}
	if _, err := rec.run(ctx, command.Command{Argv: argv, Chroot: root}); err != nil {
		return err
	}
	text, err := os.ReadFile(filepath.Join(root, cfg))
	if err != nil {
		return fmt.Errorf("reading the generated %s: %w", cfg, err)
	}
	rec.res.Config = cfg
	rec.res.RootArg, err = CheckBootConfig(cfg, string(text))
	return err
}

// kernels lists the installed kernels as (version, image, initrd) from
// /boot, newest name last.
func kernels(root string) [][3]string {
	var out [][3]string
	ents, _ := os.ReadDir(filepath.Join(root, "boot"))
	for _, e := range ents {
		v, ok := strings.CutPrefix(e.Name(), "vmlinuz-")
		if !ok {
			continue
		}
		k := [3]string{v, "/boot/" + e.Name(), ""}
		for _, i := range []string{"initrd.img-" + v, "initramfs-" + v + ".img"} {
			if _, err := os.Stat(filepath.Join(root, "boot", i)); err == nil {
				k[2] = "/boot/" + i
			}
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (b *BootInstaller) systemdBoot(ctx context.Context, rec *toolRun, o BootloaderOptions, root string, mounts []Mount, rootUUID string) error {
	if rootUUID == "" {
		return errors.New("the root filesystem's UUID is unknown (no by-uuid link for it): cannot write a kernel command line that survives a device rename")
	}
	esp := espPath(o, root, mounts)
	cmdline := "root=UUID=" + rootUUID + " rw"
	if o.KernelCmdline != "" {
		cmdline += " " + o.KernelCmdline
	}
	// kernel-install reads the command line from here, not from the
	// running (rescue) kernel's.
	if err := writeInRoot(root, "etc/kernel/cmdline", []byte(cmdline+"\n")); err != nil {
		return err
	}
	argv := []string{"bootctl", "install", "--esp-path=" + esp}
	if !b.efivarsWritable(root) {
		argv = append(argv, "--no-variables")
	}
	if _, err := rec.run(ctx, command.Command{Argv: argv, Chroot: root}); err != nil {
		return err
	}
	ks := kernels(root)
	if len(ks) == 0 {
		return errors.New("no /boot/vmlinuz-* in the installed system: install a kernel in the image")
	}
	_, kiErr := command.LookPathIn(root, "kernel-install")
	for _, k := range ks {
		if kiErr == nil {
			argv := []string{"kernel-install", "add", k[0], k[1]}
			if k[2] != "" {
				argv = append(argv, k[2])
			}
			if _, err := rec.run(ctx, command.Command{Argv: argv, Chroot: root}); err != nil {
				return err
			}
			continue
		}
		if err := writeLoaderEntry(root, esp, k, cmdline); err != nil {
			return err
		}
	}
	dir := filepath.Join(root, esp, "loader/entries")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("no loader entries were written: %w", err)
	}
	var all strings.Builder
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".conf") {
			t, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			all.Write(t)
			all.WriteByte('\n')
		}
	}
	rec.res.Config = path.Join(esp, "loader/entries")
	rec.res.RootArg, err = CheckBootConfig(rec.res.Config, all.String())
	return err
}

// writeLoaderEntry is kernel-install's job done by hand, for systems
// without it: the kernel and initrd copied to the ESP and a BLS entry.
func writeLoaderEntry(root, esp string, k [3]string, cmdline string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	espRel := strings.TrimPrefix(path.Clean(esp), "/")
	dir := path.Join(espRel, "nivis", k[0])
	if err := r.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	entry := fmt.Sprintf("title Linux %s\nversion %s\nlinux /nivis/%s/linux\n", k[0], k[0], k[0])
	if err := copyInRoot(r, strings.TrimPrefix(k[1], "/"), path.Join(dir, "linux")); err != nil {
		return err
	}
	if k[2] != "" {
		if err := copyInRoot(r, strings.TrimPrefix(k[2], "/"), path.Join(dir, "initrd")); err != nil {
			return err
		}
		entry += fmt.Sprintf("initrd /nivis/%s/initrd\n", k[0])
	}
	entry += "options " + cmdline + "\n"
	if err := r.MkdirAll(path.Join(espRel, "loader/entries"), 0o755); err != nil {
		return err
	}
	return r.WriteFile(path.Join(espRel, "loader/entries", "nivis-"+k[0]+".conf"), []byte(entry), 0o644)
}

func writeInRoot(root, rel string, data []byte) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return err
	}
	return r.WriteFile(rel, data, 0o644)
}

// copyInRoot streams src to dst, both inside r.
func copyInRoot(r *os.Root, src, dst string) error {
	in, err := r.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := r.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
