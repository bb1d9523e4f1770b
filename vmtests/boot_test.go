//go:build linux

package vmtests

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBoot proves the harness itself: a direct-kernel boot of the cached
// image with extra disks, SSH with the cached key, and the serial console in
// its file.
func TestBoot(t *testing.T) {
	Require(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	start := time.Now()
	vm := StartVM(t, Config{
		Image: img,
		Disks: []Disk{
			{SizeMiB: 64, Serial: "nivis-data1"},
			{SizeMiB: 128, Serial: "nivis-nvme1", Interface: "nvme"},
		},
	})
	up, err := vm.WaitSSH(ctx, SSHTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stage boot: SSH after %s", up.Round(100*time.Millisecond))
	Stage(t, "launch-to-ssh", start)

	checks := map[string]string{
		"uname -r":                    img.KernelRelease,
		"hostname":                    img.Spec.Hostname,
		"cat /sys/block/vdb/serial":   "nivis-data1",
		"cat /sys/block/vdb/size":     "131072", // 64 MiB in sectors
		"cat /sys/block/nvme0n1/size": "262144",
		"cat /sys/block/vda/serial":   "nivis-root",
		"findmnt -n -o SOURCE /":      "/dev/vda",
		"cat /sys/class/net/*/address | grep -c " + DefaultMAC: "1",
	}
	for cmd, want := range checks {
		out, err := vm.Run(ctx, cmd)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("%s = %q, want %q", cmd, got, want)
		}
	}
	// udev made the by-id links nivis resolves disks with.
	if _, err := vm.Run(ctx, "test -e /dev/disk/by-id/virtio-nivis-data1"); err != nil {
		t.Errorf("by-id link of the extra disk: %v", err)
	}
	if st, err := vm.QMP(ctx, "query-status", nil); err != nil || !strings.Contains(string(st), `"running"`) {
		t.Errorf("QMP query-status: %s, %v; want running", st, err)
	}
	serial, err := os.ReadFile(vm.SerialLog)
	if err != nil || !strings.Contains(string(serial), "Linux version "+img.KernelRelease) {
		t.Errorf("serial log %s lacks the kernel banner (err %v, %d bytes)", vm.SerialLog, err, len(serial))
	}
	start = time.Now()
	if err := vm.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if exited, _ := vm.Exited(); !exited {
		t.Error("QEMU still runs after Shutdown")
	}
	Stage(t, "shutdown", start)
}

// TestBootFromDisk boots the GPT disk variant with -kernel, writes a file,
// then boots the same disk through SeaBIOS and GRUB and finds the file.
func TestBootFromDisk(t *testing.T) {
	Require(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	start := time.Now()
	vm := StartVM(t, Config{Image: img, Layout: LayoutDisk})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "kernel-boot", start)
	if out, err := vm.Run(ctx, "findmnt -n -o SOURCE / && echo kept > /root/marker && sync"); err != nil || strings.TrimSpace(out) != DiskRootPartition {
		t.Fatalf("root on %q (err %v), want %s", out, err, DiskRootPartition)
	}
	start = time.Now()
	if err := vm.BootFromDisk(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "firmware-boot", start)
	cmdline, err := vm.Run(ctx, "cat /proc/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cmdline, "BOOT_IMAGE=/boot/vmlinuz-"+img.KernelRelease) {
		t.Errorf("/proc/cmdline %q: not booted by GRUB", cmdline)
	}
	if out, err := vm.Run(ctx, "cat /root/marker; test -d /sys/firmware/efi && echo uefi || echo bios"); err != nil || out != "kept\nbios\n" {
		t.Errorf("after the disk boot: %q, %v; want the marker and BIOS firmware", out, err)
	}
}

// TestBootUEFI boots the same GPT disk through OVMF and GRUB's EFI binary.
func TestBootUEFI(t *testing.T) {
	Require(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	start := time.Now()
	vm := StartVM(t, Config{Image: img, Layout: LayoutDisk, Boot: BootFirmware, UEFI: true})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	Stage(t, "uefi-boot", start)
	out, err := vm.Run(ctx, "test -d /sys/firmware/efi && echo uefi; findmnt -n -o SOURCE /")
	if err != nil || out != "uefi\n"+DiskRootPartition+"\n" {
		t.Errorf("got %q (%v), want UEFI firmware and root on %s", out, err, DiskRootPartition)
	}
}

// TestStaticNetwork boots the guest with a fixed address and no DHCP client.
// QEMU forwards SSH to 10.0.2.15 only and its DHCP pool starts at
// 10.0.2.100, so reaching the guest at all shows the static address works.
func TestStaticNetwork(t *testing.T) {
	Require(t)
	ctx := context.Background()
	img := TestImage(t, DefaultSpec())
	vm := StartVM(t, Config{Image: img, StaticNetwork: true})
	if _, err := vm.WaitSSH(ctx, SSHTimeout); err != nil {
		t.Fatal(err)
	}
	out, err := vm.Run(ctx, "ip -4 -o addr show scope global")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, staticAddr+"/24") || strings.Contains(out, "dynamic") {
		t.Errorf("addresses %q: want %s/24, not dynamic", out, staticAddr)
	}
	if out, err := vm.Run(ctx, "networkctl status --no-pager $(ls /sys/class/net | grep ^en)"); err != nil || !strings.Contains(out, "10-nivis-static.network") {
		t.Errorf("networkd does not use the static config: %q (%v)", out, err)
	}
	route, err := vm.Run(ctx, "ip -4 route show default")
	if err != nil || !strings.Contains(route, "via "+staticGateway) {
		t.Errorf("default route %q (%v), want via %s", route, err, staticGateway)
	}
}
