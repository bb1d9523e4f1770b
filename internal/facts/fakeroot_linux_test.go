//go:build linux

package facts

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeRoot builds a directory tree standing in for /: files (path ->
// content; a path ending in "/" is a directory) and symlinks (path ->
// target).
func fakeRoot(t *testing.T, files, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// blockDev adds the sysfs files of one block device under devices/.
func blockDev(files map[string]string, dir, devnum, sectors string, extra map[string]string) {
	files["sys/devices/"+dir+"/dev"] = devnum + "\n"
	files["sys/devices/"+dir+"/size"] = sectors + "\n"
	files["sys/devices/"+dir+"/holders/"] = ""
	for k, v := range extra {
		files["sys/devices/"+dir+"/"+k] = v
	}
}

// TestDisksThroughHolders: / on LVM on a partition makes the disk hold /,
// with the mount shown through the dm device; by-id links, labels, swap
// on dm and a btrfs mount (anonymous device number) are attributed.
func TestDisksThroughHolders(t *testing.T) {
	files := map[string]string{
		"proc/self/mountinfo": string(readTestdata(t, "mountinfo")),
		"dev/vda":             "", "dev/vda1": "", "dev/vdb": "",
	}
	blockDev(files, "vda", "254:0", "41943040", map[string]string{
		"serial": "SER123\n", "device/model": "QEMU HARDDISK\n", "queue/rotational": "0\n", "removable": "0\n", "ro": "0\n",
	})
	blockDev(files, "vda/vda1", "254:1", "1048576", map[string]string{"partition": "1\n", "start": "2048\n", "uevent": "MAJOR=254\nPARTN=1\nPARTNAME=boot\n"})
	blockDev(files, "vda/vda2", "254:2", "1048576", map[string]string{"partition": "2\n", "start": "1050624\n"})
	blockDev(files, "vda/vda3", "254:3", "39000000", map[string]string{"partition": "3\n", "start": "2099200\n", "holders/dm-0": "", "holders/dm-1": ""})
	blockDev(files, "vdb", "254:16", "2097152", map[string]string{"device/model": "disk2\n", "queue/rotational": "1\n"})
	blockDev(files, "dm-0", "253:0", "30000000", map[string]string{"dm/name": "vg-root\n", "slaves/vda3": ""})
	blockDev(files, "dm-1", "253:1", "2097144", map[string]string{"dm/name": "vg-swap\n", "slaves/vda3": ""})
	blockDev(files, "loop0", "7:0", "0", nil)
	blockDev(files, "loop1", "7:1", "2048", nil)
	links := map[string]string{"dev/disk/by-id/virtio-SER123": "../../vda", "dev/disk/by-id/virtio-SER123-part1": "../../vda1"}
	for _, d := range []string{"vda", "vdb", "dm-0", "dm-1", "loop0", "loop1"} {
		links["sys/block/"+d] = "../devices/" + d
		links["sys/class/block/"+d] = "../../devices/" + d
	}
	for _, p := range []string{"vda1", "vda2", "vda3"} {
		links["sys/class/block/"+p] = "../../devices/vda/" + p
	}
	g := &gatherer{root: fakeRoot(t, files, links), f: &Facts{Swaps: parseSwaps(readTestdata(t, "swaps"))}}
	g.disks()
	if len(g.f.Warnings) > 0 {
		t.Errorf("warnings: %q", g.f.Warnings)
	}

	var names []string
	byName := map[string]Disk{}
	for _, d := range g.f.Disks {
		names = append(names, d.Name)
		byName[d.Name] = d
	}
	if want := []string{"dm-0", "dm-1", "loop1", "vda", "vdb"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("disks %v, want %v (empty loop0 skipped)", names, want)
	}

	vda := byName["vda"]
	if vda.Kind != "disk" || vda.SizeBytes != 41943040*512 || vda.Serial != "SER123" || vda.Model != "QEMU HARDDISK" || vda.Rotational || vda.Path != "/dev/vda" {
		t.Errorf("vda: %+v", vda)
	}
	if !vda.HoldsRoot || len(vda.Mounts) != 0 {
		t.Errorf("vda holds_root %v mounts %+v: want / through its partition only", vda.HoldsRoot, vda.Mounts)
	}
	if !reflect.DeepEqual(vda.ByID, []string{"/dev/disk/by-id/virtio-SER123"}) {
		t.Errorf("vda by-id %v", vda.ByID)
	}
	if len(vda.Partitions) != 3 {
		t.Fatalf("vda partitions: %+v", vda.Partitions)
	}
	p1, p2, p3 := vda.Partitions[0], vda.Partitions[1], vda.Partitions[2]
	if p1.Number != 1 || p1.StartBytes != 2048*512 || p1.SizeBytes != 1048576*512 || p1.Label != "boot" || p1.HoldsRoot ||
		!reflect.DeepEqual(p1.ByID, []string{"/dev/disk/by-id/virtio-SER123-part1"}) ||
		len(p1.Mounts) != 1 || p1.Mounts[0].Mountpoint != "/boot" || p1.Mounts[0].Via != "" {
		t.Errorf("vda1: %+v", p1)
	}
	if len(p2.Mounts) != 1 || p2.Mounts[0].Mountpoint != "/boot/efi" || p2.Mounts[0].FSType != "vfat" {
		t.Errorf("vda2: %+v", p2)
	}
	wantP3 := Usage{
		Mounts:    []Mount{{Mountpoint: "/", FSType: "ext4", Source: "/dev/mapper/vg-root", Options: "rw,relatime", Via: "dm-0"}},
		Holders:   []string{"dm-0", "dm-1"},
		Swap:      true,
		HoldsRoot: true,
	}
	if !reflect.DeepEqual(p3.Usage, wantP3) {
		t.Errorf("vda3 usage:\n got %+v\nwant %+v", p3.Usage, wantP3)
	}

	dm0 := byName["dm-0"]
	if dm0.Kind != "dm" || !dm0.HoldsRoot || !reflect.DeepEqual(dm0.Slaves, []string{"vda3"}) || len(dm0.Mounts) != 1 {
		t.Errorf("dm-0: %+v", dm0)
	}
	if !byName["dm-1"].Swap {
		t.Errorf("dm-1 not swap: %+v", byName["dm-1"])
	}
	vdb := byName["vdb"]
	if vdb.Kind != "disk" || !vdb.Rotational || vdb.HoldsRoot || len(vdb.Mounts) != 1 || vdb.Mounts[0].Mountpoint != "/home" || vdb.Mounts[0].FSType != "btrfs" {
		t.Errorf("vdb (btrfs by source, anonymous devnum): %+v", vdb)
	}
	if byName["loop1"].Kind != "loop" {
		t.Errorf("loop1 kind %q", byName["loop1"].Kind)
	}
}

// TestBootAndRescueFromTree covers Secure Boot from efivars, the kernel
// image named by BOOT_IMAGE, the kernel config file, container markers and
// the rescue marker (only for this boot).
func TestBootAndRescueFromTree(t *testing.T) {
	rel := kernelRelease(t)
	bootID := "11111111-2222-3333-4444-555555555555"
	files := map[string]string{
		"sys/firmware/efi/efivars/" + secureBootVar: "\x06\x00\x00\x00\x01",
		"sys/kernel/security/lockdown":              "none [integrity] confidentiality\n",
		"proc/cmdline":                              "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-test root=/dev/vda2 ro\n",
		"boot/vmlinuz-test":                         "MZ kernel",
		"boot/config-" + rel:                        string(readTestdata(t, "kernel-config")),
		"proc/sys/kernel/kexec_load_disabled":       "1\n",
		"proc/sys/kernel/random/boot_id":            bootID + "\n",
		"proc/1/environ":                            "HOME=/\x00container=podman\x00TERM=linux\x00",
		"etc/os-release":                            string(readTestdata(t, "os-release/nixos-installer")),
		"run/nivis/rescue.json":                     `{"boot_id":"` + bootID + `","version":"dev"}`,
	}
	g := &gatherer{root: fakeRoot(t, files, nil), f: &Facts{}}
	g.system()
	g.kernel()
	g.boot()
	g.virtualization()
	g.rescue()
	f := g.f
	if f.Boot.Firmware != "uefi" || f.Boot.SecureBoot != "enabled" || f.Boot.Lockdown != "integrity" {
		t.Errorf("boot: %+v", f.Boot)
	}
	if f.Kernel.BootImage != "/vmlinuz-test" || f.Kernel.Image != "/boot/vmlinuz-test" || !f.Kernel.ImageReadable {
		t.Errorf("kernel image: boot_image %q image %q readable %v", f.Kernel.BootImage, f.Kernel.Image, f.Kernel.ImageReadable)
	}
	if f.Kernel.ConfigSource != "/boot/config-"+rel || f.Kexec.KexecLoad == nil || !*f.Kexec.KexecLoad || !*f.Kexec.KexecFileLoad {
		t.Errorf("kexec from config: source %q %+v", f.Kernel.ConfigSource, f.Kexec)
	}
	if f.Kexec.LoadDisabled == nil || !*f.Kexec.LoadDisabled {
		t.Errorf("kexec_load_disabled: %v", f.Kexec.LoadDisabled)
	}
	if f.Virtualization.Container != "podman" || !f.Virtualization.IsContainer {
		t.Errorf("container: %+v", f.Virtualization)
	}
	if !f.IsInstaller || f.OS.ID != "nixos" {
		t.Errorf("installer %v os %+v", f.IsInstaller, f.OS)
	}
	if !f.NivisRescue || f.Rescue == nil || f.Rescue.BootID != bootID || f.Rescue.Raw["version"] != "dev" {
		t.Errorf("rescue %v marker %+v", f.NivisRescue, f.Rescue)
	}

	// A marker from another boot does not count, and says why.
	files["run/nivis/rescue.json"] = `{"boot_id":"00000000-0000-0000-0000-000000000000"}`
	delete(files, "sys/firmware/efi/efivars/"+secureBootVar)
	files["sys/firmware/efi/efivars/BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c"] = "\x07\x00\x00\x00\x01\x00"
	g = &gatherer{root: fakeRoot(t, files, nil), f: &Facts{}}
	g.system()
	g.boot()
	g.rescue()
	if g.f.NivisRescue || len(g.f.Warnings) != 1 || !strings.Contains(g.f.Warnings[0], "not this boot") {
		t.Errorf("stale marker: rescue %v warnings %q", g.f.NivisRescue, g.f.Warnings)
	}
	if g.f.Boot.SecureBoot != "unsupported" {
		t.Errorf("UEFI without SecureBoot variable: %q", g.f.Boot.SecureBoot)
	}
}

// TestGatherFailsSoft: an empty root yields warnings, not a panic or error.
func TestGatherFailsSoft(t *testing.T) {
	g := &gatherer{root: t.TempDir()}
	f := g.gather(context.Background())
	if len(f.Warnings) == 0 {
		t.Fatal("nothing readable, yet no warnings")
	}
	for _, want := range []string{"os-release", "boot_id", "meminfo", "disks"} {
		found := false
		for _, w := range f.Warnings {
			found = found || strings.Contains(w, want)
		}
		if !found {
			t.Errorf("no warning about %s in %q", want, f.Warnings)
		}
	}
	if f.Boot.Firmware != "bios" || f.Disks == nil || f.SSH.HostKeys == nil {
		t.Errorf("defaults: firmware %q disks %v host keys %v", f.Boot.Firmware, f.Disks, f.SSH.HostKeys)
	}
}

func kernelRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestGatherBoot reads only the kexec-relevant state, below its root.
func TestGatherBoot(t *testing.T) {
	f := GatherBoot(fakeRoot(t, map[string]string{
		"sys/firmware/efi/efivars/" + secureBootVar: "\x06\x00\x00\x00\x01",
		"sys/kernel/security/lockdown":              "none integrity [confidentiality]\n",
		"proc/sys/kernel/kexec_load_disabled":       "1\n",
		".dockerenv":                                "",
	}, nil))
	if f.Boot.Firmware != "uefi" || f.Boot.SecureBoot != "enabled" || f.Boot.Lockdown != "confidentiality" {
		t.Errorf("boot: %+v", f.Boot)
	}
	if f.Kexec.LoadDisabled == nil || !*f.Kexec.LoadDisabled || f.Virtualization.Container != "docker" || !f.Virtualization.IsContainer {
		t.Errorf("kexec %+v virtualization %+v", f.Kexec, f.Virtualization)
	}
	if f.Hostname != "" || f.Disks != nil {
		t.Errorf("GatherBoot read more than it should: %+v", f)
	}
}
