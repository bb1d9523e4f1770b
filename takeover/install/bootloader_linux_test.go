//go:build linux

package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/oplog"
)

type fakeMounter struct {
	mounted, unmounted []string
}

func (f *fakeMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	if source != "" {
		f.mounted = append(f.mounted, target)
	}
	return nil
}

func (f *fakeMounter) Unmount(target string, flags int) error {
	f.unmounted = append(f.unmounted, target)
	return nil
}

const rootUUID = "0f3b6b2e-6a53-4f6e-a6a2-5d1c0c8f9e11"

// bootFixture is an installed root mounted from /dev/vda2 with its ESP on
// /dev/vda1, a fake sysfs saying vda2 is partition 2 of vda, and GRUB.
func bootFixture(t *testing.T, uefi bool, grubCfg string) (*BootInstaller, *command.Recorder, *fakeMounter, string) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "mnt")
	for _, p := range []string{"usr/sbin/grub-install", "usr/sbin/update-grub", "usr/bin/bootctl"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), 0o755)
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n"), 0o644)
	sys := filepath.Join(tmp, "sys")
	os.MkdirAll(filepath.Join(sys, "devices/virtual/block/vda/vda2"), 0o755)
	os.WriteFile(filepath.Join(sys, "devices/virtual/block/vda/vda2/partition"), []byte("2\n"), 0o644)
	os.MkdirAll(filepath.Join(sys, "class/block"), 0o755)
	os.Symlink("../../devices/virtual/block/vda/vda2", filepath.Join(sys, "class/block/vda2"))
	if uefi {
		os.MkdirAll(filepath.Join(sys, "firmware/efi/efivars"), 0o755)
	}
	mountinfo := fmt.Sprintf("22 1 0:21 / /proc rw - proc proc rw\n"+
		"40 1 254:2 / %s rw,relatime - ext4 /dev/vda2 rw\n"+
		"41 40 254:1 / %s/boot/efi rw,relatime - vfat /dev/vda1 rw\n", root, root)
	rr := &command.Recorder{Reply: func(ctx context.Context, c command.Command) ([]byte, error) {
		if c.Argv[0] == "update-grub" || c.Argv[0] == "grub-mkconfig" {
			os.MkdirAll(filepath.Join(c.Chroot, "boot/grub"), 0o755)
			return []byte("Generating grub configuration file ...\ndone\n"), os.WriteFile(filepath.Join(c.Chroot, "boot/grub/grub.cfg"), []byte(grubCfg), 0o644)
		}
		return nil, nil
	}}
	fm := &fakeMounter{}
	b := &BootInstaller{Run: rr, Mount: fm, DevDir: filepath.Join(tmp, "dev"), SysDir: sys,
		Mountinfo: func() ([]byte, error) { return []byte(mountinfo), nil },
		Probe: func(dev string) (string, string) {
			if dev == "/dev/vda2" {
				return rootUUID, "5d2c1a44-0b7e-4c1e-9f9e-1a2b3c4d5e6f"
			}
			return "ABCD-1234", ""
		}}
	return b, rr, fm, root
}

const goodGrubCfg = `menuentry 'Debian GNU/Linux' {
	set root='hd0,gpt2'
	search --no-floppy --fs-uuid --set=root ` + rootUUID + `
	linux	/boot/vmlinuz-6.1.0-18-amd64 root=UUID=` + rootUUID + ` ro quiet
	initrd	/boot/initrd.img-6.1.0-18-amd64
}
`

func argvs(cs []command.Command) [][]string {
	var out [][]string
	for _, c := range cs {
		out = append(out, c.Argv)
	}
	return out
}

func TestBootloaderGrubBIOS(t *testing.T) {
	b, rr, fm, root := bootFixture(t, false, goodGrubCfg)
	res, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootGrub})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"grub-install", "--target=i386-pc", "/dev/vda"}, {"update-grub"}}
	if got := argvs(rr.Commands); !reflect.DeepEqual(got, want) {
		t.Fatalf("commands %q, want %q", got, want)
	}
	for _, c := range rr.Commands {
		if c.Chroot != root {
			t.Errorf("%v ran outside the chroot", c)
		}
	}
	if res.RootArg != "UUID="+rootUUID || res.Config != "/boot/grub/grub.cfg" {
		t.Errorf("result %+v", res)
	}
	// The by-uuid links grub-mkconfig looks for, udev style.
	if l, err := os.Readlink(filepath.Join(b.DevDir, "disk/by-uuid", rootUUID)); err != nil || l != "../../vda2" {
		t.Errorf("by-uuid link: %q %v", l, err)
	}
	if l, _ := os.Readlink(filepath.Join(b.DevDir, "disk/by-partuuid/5d2c1a44-0b7e-4c1e-9f9e-1a2b3c4d5e6f")); l != "../../vda2" {
		t.Errorf("by-partuuid link: %q", l)
	}
	wantMounts := []string{filepath.Join(root, "dev"), filepath.Join(root, "proc"), filepath.Join(root, "sys"), filepath.Join(root, "run")}
	if !reflect.DeepEqual(fm.mounted, wantMounts) {
		t.Errorf("mounted %v", fm.mounted)
	}
	if len(fm.unmounted) != len(fm.mounted) || fm.unmounted[0] != filepath.Join(root, "run") {
		t.Errorf("unmounted %v (want all, in reverse)", fm.unmounted)
	}
}

func TestBootloaderGrubUEFI(t *testing.T) {
	b, rr, fm, root := bootFixture(t, true, goodGrubCfg)
	if _, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootGrub}); err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi", "--bootloader-id=debian", "--no-nvram"},
		{"grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi", "--removable", "--no-nvram"},
		{"update-grub"},
	}
	if got := argvs(rr.Commands); !reflect.DeepEqual(got, want) {
		t.Fatalf("commands %q, want %q", got, want)
	}
	if fm.mounted[len(fm.mounted)-1] != filepath.Join(root, "sys/firmware/efi/efivars") {
		t.Errorf("efivarfs not mounted: %v", fm.mounted)
	}
	// both: BIOS boot code on the named disk too.
	b, rr, _, root = bootFixture(t, true, goodGrubCfg)
	if _, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootGrub, Firmware: FirmwareBoth, Disks: []string{"/dev/sda", "/dev/sdb"}, BootloaderID: "web"}); err != nil {
		t.Fatal(err)
	}
	if got := argvs(rr.Commands); len(got) != 5 || got[0][2] != "/dev/sda" || got[1][2] != "/dev/sdb" || got[2][3] != "--bootloader-id=web" {
		t.Fatalf("commands %q", got)
	}
}

func TestBootloaderRefusesDeviceNames(t *testing.T) {
	bad := strings.ReplaceAll(goodGrubCfg, "root=UUID="+rootUUID, "root=/dev/vda2")
	b, _, fm, root := bootFixture(t, false, bad)
	_, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootGrub})
	if err == nil || !strings.Contains(err.Error(), "root=/dev/vda2") && !strings.Contains(err.Error(), "/dev/vda2, a device name") {
		t.Fatalf("got %v, want a refusal naming root=/dev/vda2", err)
	}
	if exitcode.Of(err) != exitcode.Change || !strings.Contains(err.Error(), "will not be rebooted") {
		t.Errorf("error %v (code %v)", err, exitcode.Of(err))
	}
	if len(fm.unmounted) != len(fm.mounted) {
		t.Errorf("mounts left behind: %v vs %v", fm.mounted, fm.unmounted)
	}
	// No kernel at all is as bad.
	if _, err := CheckBootConfig("grub.cfg", "set timeout=5\n"); err == nil {
		t.Error("a config without kernels passed")
	}
	for _, ok := range []string{"root=PARTUUID=abc", "root=/dev/mapper/vg-root", "root=ZFS=rpool/root"} {
		if _, err := CheckBootConfig("x", "linux /vmlinuz "+ok+" ro\n"); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

func TestBootloaderToolFailure(t *testing.T) {
	b, rr, fm, root := bootFixture(t, true, goodGrubCfg)
	rr.Reply = func(ctx context.Context, c command.Command) ([]byte, error) {
		return []byte("Installing for x86_64-efi platform.\ngrub-install: error: /usr/lib/grub/x86_64-efi/modinfo.sh doesn't exist. Please specify --target or --directory.\n"), errors.New("exit status 1")
	}
	_, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootGrub})
	if err == nil || !strings.Contains(err.Error(), "modinfo.sh doesn't exist") || !strings.Contains(err.Error(), "grub-install --target=x86_64-efi") {
		t.Fatalf("the error must carry the command and its output: %v", err)
	}
	if len(rr.Commands) != 1 || len(fm.unmounted) != len(fm.mounted) {
		t.Errorf("ran %d commands; mounts %v unmounts %v", len(rr.Commands), fm.mounted, fm.unmounted)
	}
}

func TestBootloaderSystemdBoot(t *testing.T) {
	b, rr, _, root := bootFixture(t, false, "")
	os.MkdirAll(filepath.Join(root, "boot/efi"), 0o755)
	os.WriteFile(filepath.Join(root, "boot/vmlinuz-6.1.0-18-amd64"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(root, "boot/initrd.img-6.1.0-18-amd64"), []byte("initrd"), 0o644)
	res, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootSystemdBoot, KernelCmdline: "console=ttyS0"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"bootctl", "install", "--esp-path=/boot/efi", "--no-variables"}}
	if got := argvs(rr.Commands); !reflect.DeepEqual(got, want) {
		t.Fatalf("commands %q, want %q", got, want)
	}
	entry := read(t, root, "boot/efi/loader/entries/nivis-6.1.0-18-amd64.conf")
	if !strings.Contains(entry, "options root=UUID="+rootUUID+" rw console=ttyS0\n") || !strings.Contains(entry, "initrd /nivis/6.1.0-18-amd64/initrd") {
		t.Errorf("entry:\n%s", entry)
	}
	if read(t, root, "boot/efi/nivis/6.1.0-18-amd64/linux") != "kernel" || res.RootArg != "UUID="+rootUUID {
		t.Errorf("kernel not copied or result %+v", res)
	}
	if read(t, root, "etc/kernel/cmdline") != "root=UUID="+rootUUID+" rw console=ttyS0\n" {
		t.Error("/etc/kernel/cmdline")
	}
}

func TestBootloaderNoneAndCustom(t *testing.T) {
	b, rr, fm, root := bootFixture(t, false, "")
	if _, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootNone}); err != nil || len(rr.Commands)+len(fm.mounted) != 0 {
		t.Fatalf("none did something: %v %v %v", err, rr.Commands, fm.mounted)
	}
	if _, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootCustom, Command: []string{"/usr/local/bin/my-boot", "--x"}}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(argvs(rr.Commands), [][]string{{"/usr/local/bin/my-boot", "--x"}}) {
		t.Fatalf("commands %v", rr.Commands)
	}
	if _, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: "lilo"}); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("lilo: %v", err)
	}
}

// TestFSUUID reads UUIDs from filesystems made by the real mkfs tools.
func TestFSUUID(t *testing.T) {
	const u = "8c1f5a3e-2b4d-4e6f-9a0b-1c2d3e4f5a6b"
	for _, tc := range []struct {
		tool string
		args []string
		size int64
		want string
	}{
		{"mkfs.ext4", []string{"-q", "-F", "-U", u}, 16 << 20, u},
		{"mkfs.xfs", []string{"-q", "-f", "-m", "uuid=" + u}, 320 << 20, u},
		{"mkfs.btrfs", []string{"-q", "-f", "-U", u}, 128 << 20, u},
		{"mkfs.vfat", []string{"-F", "32", "-i", "1234ABCD"}, 64 << 20, "1234-ABCD"},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tc.tool); err != nil {
				t.Skipf("%s not installed", tc.tool)
			}
			img := filepath.Join(t.TempDir(), "fs.img")
			f, _ := os.Create(img)
			f.Truncate(tc.size)
			f.Close()
			if out, err := exec.Command(tc.tool, append(tc.args, img)...).CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got, err := FSUUID(img)
			if err != nil || got != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

// TestBootloaderLogsTools runs a real tool in the chroot: the operation
// log gets its exact argv, and its output when it fails.
func TestBootloaderLogsTools(t *testing.T) {
	requireRoot(t)
	busybox, ok := command.Find("busybox")
	if !ok {
		t.Skip("no busybox to put in the chroot")
	}
	b, _, _, root := bootFixture(t, false, "")
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "bin/sh"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines []string
	b.Run = command.Exec{Log: oplog.New(func(level, line string) { lines = append(lines, level+" "+line) })}
	b.Mount = &fakeMounter{} // the chroot needs no /dev or /proc for sh
	cmd := []string{"/bin/sh", "-c", "echo no boot loader today >&2; exit 3"}
	res, err := b.Install(context.Background(), BootloaderOptions{Root: root, Kind: BootCustom, Command: cmd})
	if err == nil || !strings.Contains(err.Error(), "no boot loader today") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v", err)
	}
	if len(res.Commands) != 1 || !reflect.DeepEqual(res.Commands[0].Argv, cmd) {
		t.Errorf("result commands %v", res.Commands)
	}
	quoted := "chroot " + root + " /bin/sh -c 'echo no boot loader today >&2; exit 3'"
	want := []string{"info [started] " + quoted, "error [failed] " + quoted + ": exit status 3\nno boot loader today"}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("log:\n%q\nwant:\n%q", lines, want)
	}
}
