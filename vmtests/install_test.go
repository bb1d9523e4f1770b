//go:build linux

package vmtests

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// installDisk is the blank disk `nivis install` installs to. The config
// names it /dev/disk/by-id/virtio-target, which disko resolves in Go:
// the rescue system runs no udev.
var installDisk = Disk{SizeMiB: 4096, Serial: "target"}

// installConfig renders testdata/install/NAME.yaml for rf and the
// harness key into a fresh directory and returns the config's path.
func installConfig(t *testing.T, name string, rf *Rootfs, vm *VM, replace ...string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "install", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(vm.KeyFile + ".pub")
	if err != nil {
		t.Fatalf("the harness key's public half: %v", err)
	}
	// The test's replacements come first: NewReplacer applies the first
	// pair that matches.
	r := strings.NewReplacer(append(append([]string(nil), replace...),
		"@ROOTFS@", rf.Path,
		"@AUTHORIZED_KEY@", strings.TrimSpace(string(pub)),
	)...)
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(r.Replace(string(raw))), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// phaseTable is the "phases:" summary nivis prints on stderr.
var phaseTable = regexp.MustCompile(`(?s)\nphases:\n(.*?total[^\n]*)`)

func phaseSummary(stderr string) string {
	if m := phaseTable.FindStringSubmatch(stderr); m != nil {
		return m[1]
	}
	return "(no phase summary)"
}

// installRun runs `nivis install` with the test's connection flags.
func installRun(t *testing.T, nivis string, vm *VM, cfg string, extra ...string) (stdout, stderr string, code int) {
	t.Helper()
	args := append([]string{"install", "--copy-host-keys", "--yes", "-c", cfg, "-v"}, extra...)
	start := time.Now()
	stdout, stderr, code = nivisRun(t, nivis, vm, 45*time.Minute, args...)
	Stage(t, "nivis "+strings.Join(args, " "), start)
	t.Logf("nivis install exited %d; phases:\n%s", code, phaseSummary(stderr))
	return stdout, stderr, code
}

// powerOffRescue powers the rescue system off (target unmounted, synced).
func powerOffRescue(t *testing.T, vm *VM) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := PowerOffRescue(ctx, vm); err != nil {
		t.Fatal(err)
	}
}

// bootInstalled boots the install target alone through SeaBIOS and the
// GRUB nivis installed, on the same port, and waits for SSH.
func bootInstalled(t *testing.T, vm *VM) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if err := BootInstalled(ctx, vm, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "boot-installed", start)
}

// installed is what checkInstalled expects of an installed guest.
type installed struct {
	hostname, hostKey string
	firmware          string // bios or uefi
	root, esp         string // the partitions mounted at / and /boot/efi
	loader            string // "" (GRUB) or systemd-boot
}

var biosInstalled = installed{hostname: "installed1", firmware: "bios", root: "/dev/vda3", esp: "/dev/vda2"}

// checkInstalled checks the installed system over plain OpenSSH with
// strict host key checking against the known_hosts nivis wrote before the
// kexec: the host key was kept.
func checkInstalled(t *testing.T, vm *VM, w installed) {
	t.Helper()
	must := func(cmd string) string {
		t.Helper()
		out, err := strictSSH(t, vm, false, cmd)
		if err != nil {
			t.Fatalf("strict ssh %q (host key not kept?): %v\n%s", cmd, err, out)
		}
		return out
	}
	if got := strings.TrimSpace(must("hostname")); got != w.hostname {
		t.Errorf("hostname %q, want %q", got, w.hostname)
	}
	fstab := must("cat /etc/fstab")
	t.Logf("installed /etc/fstab:\n%s", fstab)
	for _, mp := range []string{"/", "/boot/efi"} {
		re := regexp.MustCompile(`(?m)^UUID=[0-9A-Fa-f-]+\s+` + regexp.QuoteMeta(mp) + `\s`)
		if !re.MatchString(fstab) {
			t.Errorf("/etc/fstab has no UUID= line for %s", mp)
		}
	}
	mounts := must("findmnt -n -o TARGET,SOURCE,FSTYPE / ; findmnt -n -o TARGET,SOURCE,FSTYPE /boot/efi")
	t.Logf("mounts:\n%s", mounts)
	if !regexp.MustCompile(`(?m)^/\s+`+w.root+`\s+ext4$`).MatchString(mounts) ||
		!regexp.MustCompile(`(?m)^/boot/efi\s+`+w.esp+`\s+vfat$`).MatchString(mounts) {
		t.Errorf("want / on %s (ext4) and /boot/efi on %s (vfat), got:\n%s", w.root, w.esp, mounts)
	}
	cmdline := must("cat /proc/cmdline")
	if w.loader == "systemd-boot" {
		if !strings.Contains(cmdline, "root=UUID=") {
			t.Errorf("/proc/cmdline %q: want root=UUID=", cmdline)
		}
		if got := must("ls /sys/firmware/efi/efivars/ | grep -c '^LoaderInfo-' || true"); strings.TrimSpace(got) == "0" {
			t.Error("no LoaderInfo EFI variable: the system was not booted by systemd-boot")
		}
	} else if !strings.Contains(cmdline, "root=UUID=") || !strings.Contains(cmdline, "BOOT_IMAGE=") {
		t.Errorf("/proc/cmdline %q: want GRUB's BOOT_IMAGE= and root=UUID=", cmdline)
	}
	if got := strings.TrimSpace(must("test -d /sys/firmware/efi && echo uefi || echo bios")); got != w.firmware {
		t.Errorf("firmware %q, want %s", got, w.firmware)
	}
	if got := strings.TrimSpace(must("cat /etc/ssh/ssh_host_ed25519_key.pub")); got != w.hostKey {
		t.Errorf("host key %q, want the guest's original %q", got, w.hostKey)
	}
	if got := must("systemctl is-system-running --wait || true"); !strings.Contains(got, "running") {
		t.Logf("systemctl is-system-running: %s; failed units:\n%s", got, must("systemctl --failed --no-legend || true"))
	}
	t.Logf("installed disk:\n%s", must("lsblk -o NAME,SIZE,TYPE,FSTYPE,PARTLABEL,MOUNTPOINT "+strings.TrimRight(w.root, "0123456789")))
}

// startInstallGuest boots the standard guest with the blank target disk
// and returns it with its ed25519 host key.
func startInstallGuest(t *testing.T, tweak ...func(*Config)) (*VM, string) {
	t.Helper()
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	start := time.Now()
	cfg := Config{Image: img, MemoryMiB: 1024, CPUs: 2, MAC: DefaultMAC, Disks: []Disk{installDisk}}
	for _, f := range tweak {
		f(&cfg)
	}
	vm := StartVM(t, cfg)
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "boot", start)
	key, err := vm.Run(ctx, "cat /etc/ssh/ssh_host_ed25519_key.pub")
	if err != nil {
		t.Fatal(err)
	}
	return vm, strings.TrimSpace(key)
}

// TestInstallBIOS is issue 6's first proof: a Debian guest is taken over
// with `nivis install` (kexec into the rescue system, GPT with a BIOS boot
// partition, an ESP and an ext4 root on its second disk, the cached Debian
// rootfs tarball, GRUB for BIOS), then QEMU boots that disk alone through
// SeaBIOS and the installed GRUB, and plain OpenSSH with the known_hosts
// from before the install gets in: hostname, fstab by UUID, mounts and the
// host key are as declared.
func TestInstallBIOS(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	vm, hostKey := startInstallGuest(t)
	cfg := installConfig(t, "bios", rf, vm)

	// --dry-run shows the whole plan and changes nothing: same boot, the
	// target disk still blank.
	bootID, err := vm.BootID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := installRun(t, nivis, vm, cfg, "--dry-run")
	if code != 0 {
		t.Fatalf("--dry-run exited %d\n%s\n%s", code, out, tail(errOut, 8000))
	}
	for _, want := range []string{"host facts:", "disk plan:", "DESTROY", "/dev/disk/by-id/virtio-target", "install: " + rf.Path + " (tar)", "bootloader grub", "dry run: nothing was changed"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("--dry-run output lacks %q:\n%s\n%s", want, out, tail(errOut, 3000))
		}
	}
	if after, err := vm.BootID(context.Background()); err != nil || after != bootID {
		t.Fatalf("--dry-run rebooted or kexec'd the guest: %q -> %q (%v)", bootID, after, err)
	}
	if blank, err := vm.Run(context.Background(), "blkid -p /dev/vdb >/dev/null 2>&1 && echo used || echo blank"); err != nil || strings.TrimSpace(blank) != "blank" {
		t.Fatalf("--dry-run touched the target disk: %q %v", blank, err)
	}

	// The guest boots with -kernel, which QEMU would load again on a
	// reboot: stay in the rescue system and boot the target disk here.
	out, errOut, code = installRun(t, nivis, vm, cfg, "--no-reboot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	t.Logf("nivis install stdout:\n%s\nstderr (tail):\n%s", out, tail(errOut, 6000))
	for _, want := range []string{"disk plan:", "/dev/disk/by-id/virtio-target"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("nivis install output lacks %q", want)
		}
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	w := biosInstalled
	w.hostKey = hostKey
	checkInstalled(t, vm, w)
}

// TestInstallBootloaderFailure: a bootloader step that fails stops the
// install with exit 5 and a message naming it, and the host is NOT
// rebooted: it stays in the rescue system with the new system mounted.
// `--phases install,reboot` with a fixed config then resumes there (no
// second kexec, no repartitioning) and the result boots.
func TestInstallBootloaderFailure(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	vm, hostKey := startInstallGuest(t)
	broken := installConfig(t, "bios", rf, vm, "bootloader: grub",
		"bootloader: custom\nbootloaderCommand: \"echo nivis-test: no boot loader today >&2; exit 3\"")

	// No --no-reboot: the failure alone must keep the host in the rescue.
	out, errOut, code := installRun(t, nivis, vm, broken)
	if code != 5 {
		t.Fatalf("nivis install with a failing bootloader exited %d, want 5 (change failed)\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	for _, want := range []string{"phase install", "nivis-test: no boot loader today", "NOT be rebooted"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the error output lacks %q:\n%s", want, tail(errOut, 4000))
		}
	}
	if !regexp.MustCompile(`(?m)^\s+install\s+FAILED`).MatchString(phaseSummary(errOut)) {
		t.Errorf("phase summary does not show the failed install:\n%s", phaseSummary(errOut))
	}
	// Still the rescue system, the same boot, the target mounted.
	bootID, err := strictSSH(t, vm, false, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second) // a reboot scheduled with a delay would have happened by now
	state, err := strictSSH(t, vm, false, "cat /proc/sys/kernel/random/boot_id; cat /run/nivis/rescue.json; cat /proc/mounts")
	if err != nil {
		t.Fatalf("the host is gone after a failed install: %v\n%s", err, vm.SerialTail(40))
	}
	if !strings.HasPrefix(state, bootID) || !strings.Contains(state, " /mnt ext4 ") {
		t.Fatalf("want the same rescue boot with the target mounted at /mnt:\n%s", state)
	}

	// A hostile tarball pushed into the same rescue system is refused and
	// writes nothing outside the target root.
	hostile := installConfig(t, "bios", rf, vm, "@ROOTFS@", hostileTar(t))
	_, errOut, code = installRun(t, nivis, vm, hostile, "--phases", "install", "--no-reboot")
	if code != 2 || !strings.Contains(errOut, "outside") {
		t.Errorf("a hostile tarball: exit %d, want 2 and a refusal naming the escape\n%s", code, tail(errOut, 4000))
	}
	if got, err := strictSSH(t, vm, false, "for f in /tmp/nivis-pwned /tmp/nivis-dotdot /nivis-abs; do test -e $f && echo $f; done; true"); err != nil || strings.TrimSpace(got) != "" {
		t.Errorf("the hostile tarball wrote outside the root: %q %v", got, err)
	}

	fixed := installConfig(t, "bios", rf, vm)
	out, errOut, code = installRun(t, nivis, vm, fixed, "--phases", "install,reboot", "--no-reboot")
	if code != 0 {
		t.Fatalf("resume exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	sum := phaseSummary(errOut)
	for _, re := range []string{`(?m)^\s+kexec\s+skipped`, `(?m)^\s+disko\s+skipped`, `(?m)^\s+install\s+ok`} {
		if !regexp.MustCompile(re).MatchString(sum) {
			t.Errorf("resume phases: want %s in\n%s", re, sum)
		}
	}
	if after, err := strictSSH(t, vm, false, "cat /proc/sys/kernel/random/boot_id"); err != nil || after != bootID {
		t.Errorf("the resume kexec'd or rebooted: boot_id %q -> %q (%v)", bootID, after, err)
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	w := biosInstalled
	w.hostKey = hostKey
	checkInstalled(t, vm, w)
}

// TestInstallUEFI: the same takeover on a guest that runs under OVMF: an
// ESP and an ext4 root, GRUB for UEFI (also at the removable-media path,
// which OVMF boots on a disk it has no boot entry for), then OVMF boots
// the target disk alone.
func TestInstallUEFI(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	vm, hostKey := startInstallGuest(t, func(c *Config) { c.UEFI = true })
	if got, err := vm.Run(context.Background(), "test -d /sys/firmware/efi && echo uefi"); err != nil || strings.TrimSpace(got) != "uefi" {
		t.Fatalf("the guest did not boot under UEFI: %q %v", got, err)
	}
	cfg := installConfig(t, "uefi", rf, vm)
	// nixos-anywhere's extra flags, as it spells them: extra files with an
	// owner, and a secret written to the host before disko.
	extra := t.TempDir()
	for name, body := range map[string]string{"etc/nivis-extra/hello": "hello from --extra-files\n", "home/alice/notes": "alice's\n"} {
		p := filepath.Join(extra, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(t.TempDir(), "disk.key")
	if err := os.WriteFile(secret, []byte("not-a-real-key"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := installRun(t, nivis, vm, cfg, "--no-reboot", "--extra-files", extra,
		"--chown", "/home/alice", "1000:1000", "--disk-encryption-keys", "/tmp/nivis-disk.key", secret)
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	if strings.Contains(out+errOut, "not-a-real-key") {
		t.Error("the disk encryption key was printed")
	}
	if got, err := strictSSH(t, vm, false, "cat /tmp/nivis-disk.key"); err != nil || got != "not-a-real-key" {
		t.Errorf("--disk-encryption-keys: the rescue system's /tmp/nivis-disk.key is %q (%v)", got, err)
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	checkInstalled(t, vm, installed{hostname: "installed-uefi", hostKey: hostKey, firmware: "uefi", root: "/dev/vda2", esp: "/dev/vda1"})
	if got, err := strictSSH(t, vm, false, "cat /etc/nivis-extra/hello; stat -c '%a %u:%g' /etc/nivis-extra/hello /home/alice /home/alice/notes"); err != nil ||
		!strings.Contains(got, "hello from --extra-files") || !strings.Contains(got, "640 0:0") || !strings.Contains(got, "1000:1000\n640 1000:1000") {
		t.Errorf("--extra-files/--chown in the installed system: %v\n%s", err, got)
	}
	if out, err := strictSSH(t, vm, false, "ls /boot/efi/EFI/BOOT/ /boot/efi/EFI/debian/"); err != nil || !strings.Contains(out, "BOOTX64.EFI") || !strings.Contains(out, "grubx64.efi") {
		t.Errorf("ESP contents: %v\n%s", err, out)
	}
}

// TestInstallSystemdBoot: the UEFI install with systemd-boot (bootctl in
// the new system's chroot, kernel-install's entries on the ESP), booted by
// OVMF from the disk alone.
func TestInstallSystemdBoot(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t, "systemd-boot")
	vm, hostKey := startInstallGuest(t, func(c *Config) { c.UEFI = true })
	cfg := installConfig(t, "uefi", rf, vm, "bootloader: grub", "bootloader: systemd-boot")
	out, errOut, code := installRun(t, nivis, vm, cfg, "--no-reboot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	checkInstalled(t, vm, installed{hostname: "installed-uefi", hostKey: hostKey, firmware: "uefi", root: "/dev/vda2", esp: "/dev/vda1", loader: "systemd-boot"})
}

// TestInstallStaticNetwork: a guest with a static address and no DHCP
// client (QEMU's DHCP would hand out another address, which the forwarded
// port never reaches) is installed with `network: keep`; the installed
// system must come back on that same static address by itself. The
// reboot phase (via --kexec-boot) only passes if it does.
func TestInstallStaticNetwork(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	vm, hostKey := startInstallGuest(t, func(c *Config) { c.StaticNetwork = true })
	cfg := installConfig(t, "bios", rf, vm)
	out, errOut, code := installRun(t, nivis, vm, cfg, "--kexec-boot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s\nserial:\n%s", code, out, tail(errOut, 16000), vm.SerialTail(60))
	}
	if !regexp.MustCompile(`(?m)^\s+reboot\s+ok`).MatchString(phaseSummary(errOut)) {
		t.Errorf("phases:\n%s", phaseSummary(errOut))
	}
	checkInstalled(t, vm, installed{hostname: "installed1", hostKey: hostKey, firmware: "bios", root: "/dev/vdb3", esp: "/dev/vdb2"})
	got, err := strictSSH(t, vm, false, "ip -4 -o addr show scope global; grep -h -A3 '^\\[Match\\]\\|^Address' /etc/systemd/network/*.network")
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	t.Logf("installed network:\n%s", got)
	if !strings.Contains(got, staticAddr+"/24") || strings.Contains(got, "dynamic") {
		t.Errorf("want the static %s/24, not a DHCP lease:\n%s", staticAddr, got)
	}
}

// TestInstallDHCP: `network: dhcp` gives the installed system DHCP on its
// NICs instead of the captured addresses, and it comes back (the reboot
// phase via --kexec-boot reconnects through QEMU's DHCP).
func TestInstallDHCP(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	vm, hostKey := startInstallGuest(t)
	cfg := installConfig(t, "bios", rf, vm, "network: keep", "network: dhcp")
	out, errOut, code := installRun(t, nivis, vm, cfg, "--kexec-boot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s\nserial:\n%s", code, out, tail(errOut, 16000), vm.SerialTail(60))
	}
	checkInstalled(t, vm, installed{hostname: "installed1", hostKey: hostKey, firmware: "bios", root: "/dev/vdb3", esp: "/dev/vdb2"})
	got, err := strictSSH(t, vm, false, "ip -4 -o addr show scope global; cat /etc/systemd/network/*.network")
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	t.Logf("installed network:\n%s", got)
	if !strings.Contains(got, "dynamic") || !strings.Contains(got, "DHCP=yes") || regexp.MustCompile(`(?m)^Address=`).MatchString(got) {
		t.Errorf("want a DHCP lease from DHCP=yes files and no static Address=:\n%s", got)
	}
}

// TestInstallOCI installs from an OCI image layout with two layers (the
// rootfs as a zstd layer, then a gzip layer adding a file and deleting
// another with a whiteout), pushed layer by layer, and runs the whole
// reboot phase with --kexec-boot: the rescue system kexecs the installed
// kernel (QEMU would boot its -kernel again on a plain reboot) and nivis
// waits for a new boot_id with the kept host key and the new hostname.
func TestInstallOCI(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	oci := TestOCI(t, rf)
	vm, hostKey := startInstallGuest(t)
	cfg := installConfig(t, "bios", rf, vm, "@ROOTFS@", oci)
	out, errOut, code := installRun(t, nivis, vm, cfg, "--kexec-boot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s\nserial:\n%s", code, out, tail(errOut, 16000), vm.SerialTail(60))
	}
	for _, want := range []string{"image extracted", "layers=2", "the installed kernel is loaded", "the installed system is up", "installed: Debian"} {
		if !strings.Contains(out+errOut, want) {
			t.Errorf("nivis install output lacks %q:\n%s", want, tail(out+errOut, 4000))
		}
	}
	for _, re := range []string{`(?m)^\s+install\s+ok`, `(?m)^\s+reboot\s+ok`} {
		if !regexp.MustCompile(re).MatchString(phaseSummary(errOut)) {
			t.Errorf("phases: want %s in\n%s", re, phaseSummary(errOut))
		}
	}
	// The same QEMU, so the target is still the second disk.
	checkInstalled(t, vm, installed{hostname: "installed1", hostKey: hostKey, firmware: "bios", root: "/dev/vdb3", esp: "/dev/vdb2"})
	got, err := strictSSH(t, vm, false, "cat "+OCIMarker+"; test -e "+OCIWhiteout+" && echo whiteout-ignored || echo whiteout-applied")
	if err != nil || !strings.Contains(got, "added by the second OCI layer") || !strings.Contains(got, "whiteout-applied") {
		t.Errorf("layer 2 not applied as an overlay: %v\n%s", err, got)
	}
}

// TestInstallRaw writes a raw disk image (the harness's own bootable GPT
// image: BIOS boot, ESP, root with GRUB) to the target disk, with no disko
// layout, and boots that disk alone. The image carries its own host key,
// the same as the guest's, so strict host key checking still passes.
func TestInstallRaw(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	raw, err := TestImage(t, DefaultSpec()).BootDisk(context.Background())
	if err != nil {
		t.Fatalf("the test image's raw disk: %v", err)
	}
	st, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	vm, hostKey := startInstallGuest(t, func(c *Config) {
		c.Disks = []Disk{{SizeMiB: int(st.Size()>>20) + 64, Serial: "target"}}
	})
	cfg := installConfig(t, "raw", &Rootfs{}, vm, "@RAW@", raw)
	out, errOut, code := installRun(t, nivis, vm, cfg, "--no-reboot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s", code, out, tail(errOut, 16000))
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	got, err := strictSSH(t, vm, false, "cat /etc/ssh/ssh_host_ed25519_key.pub; findmnt -n -o SOURCE,FSTYPE /; cat /proc/cmdline")
	if err != nil {
		t.Fatalf("strict ssh into the raw-installed guest: %v\n%s", err, got)
	}
	t.Logf("raw-installed guest:\n%s", got)
	if !strings.HasPrefix(got, hostKey) || !strings.Contains(got, "/dev/vda3 ext4") || !strings.Contains(got, "BOOT_IMAGE=") {
		t.Errorf("want the image's system booted by its GRUB from /dev/vda3, got:\n%s", got)
	}
}

// TestInstallSmallMemory: a 512 MiB, 1 vCPU guest installs the Debian
// rootfs, whose tar is bigger than the guest's RAM (779 MiB unpacked from
// 230 MiB of zstd): the stream is never held whole, neither in the
// client's wire nor in the in-RAM rescue system.
func TestInstallSmallMemory(t *testing.T) {
	Require(t)
	nivis := requireNivis(t)
	rf := TestRootfs(t)
	plain, err := zstdContentSize(rf.Path)
	if err != nil {
		t.Fatal(err)
	}
	const ramMiB = 512
	if plain>>20 <= ramMiB {
		t.Fatalf("the rootfs unpacks to %d MiB: not bigger than the guest's %d MiB", plain>>20, ramMiB)
	}
	t.Logf("rootfs: %d MiB zstd, %d MiB tar; guest RAM %d MiB", rf.Size>>20, plain>>20, ramMiB)
	vm, hostKey := startInstallGuest(t, func(c *Config) { c.MemoryMiB, c.CPUs = ramMiB, 1 })
	cfg := installConfig(t, "bios", rf, vm)
	out, errOut, code := installRun(t, nivis, vm, cfg, "--no-reboot")
	if code != 0 {
		t.Fatalf("nivis install exited %d\nstdout:\n%s\nstderr:\n%s\nserial:\n%s", code, out, tail(errOut, 16000), vm.SerialTail(60))
	}
	// The rescue system's own tools are u-root's: read /proc/meminfo whole.
	mem, err := strictSSH(t, vm, false, "cat /proc/meminfo")
	if err != nil {
		t.Fatalf("%v\n%s", err, mem)
	}
	for _, l := range strings.Split(mem, "\n") {
		if strings.HasPrefix(l, "MemTotal:") || strings.HasPrefix(l, "MemAvailable:") {
			t.Logf("rescue system after the install: %s", l)
		}
	}
	powerOffRescue(t, vm)
	bootInstalled(t, vm)
	w := biosInstalled
	w.hostKey = hostKey
	checkInstalled(t, vm, w)
}

// zstdContentSize is the unpacked size of a zstd file, by decoding it.
func zstdContentSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	return io.Copy(io.Discard, zr)
}

// hostileTar writes a tarball whose entries try to leave the root: an
// absolute symlink then a file through it, a ".." path, an absolute path.
func hostileTar(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hostile.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	body := []byte("pwned\n")
	for _, h := range []*tar.Header{
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))},
		{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/tmp", Mode: 0o777},
		{Name: "evil/nivis-pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))},
		{Name: "../../tmp/nivis-dotdot", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))},
		{Name: "/nivis-abs", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
