package initramfs

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

const testModules = "testdata/modules/6.1.0-test"

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko.xz": "virtio_rng",
		"kernel/fs/btrfs/btrfs.ko.zst":                   "btrfs",
		"kernel/fs/fat/vfat.ko":                          "vfat",
		"dm-crypt":                                       "dm_crypt",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModaliases(t *testing.T) {
	got, err := Modaliases("testdata/sys/devices")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 {
		t.Fatalf("got %d modaliases, want 6: %q", len(got), got)
	}
	if !contains(got, "virtio:d00000001v00001AF4") {
		t.Errorf("nested virtio modalias missing: %q", got)
	}
}

func TestSelectClosesOverDepsSoftdepsAliasesAndHardware(t *testing.T) {
	ix, err := LoadModuleIndex(testModules)
	if err != nil {
		t.Fatal(err)
	}
	hw, err := Modaliases("testdata/sys/devices")
	if err != nil {
		t.Fatal(err)
	}
	sel := ix.Select([]string{"virtio_blk", "virtio-rng", "btrfs", "ext4", "nosuch", "fs-vfat"}, hw)

	want := []string{
		// named, with modules.dep dependencies
		"virtio_blk", "virtio", "virtio_ring", "virtio_rng", "rng_core",
		"btrfs", "raid6_pq", "xor", "libcrc32c",
		// softdep "pre: crc32c" through the alias "crc32c"
		"crc32c_generic",
		// "fs-vfat" is an alias; vfat needs fat
		"vfat", "fat",
		// present hardware: virtio PCI device, its virtio NIC, an e1000,
		// and the CPU's crc32 feature
		"virtio_pci", "virtio_net", "net_failover", "failover", "e1000", "crc32c_intel",
	}
	sort.Strings(want)
	if !reflect.DeepEqual(sel.Names, want) {
		t.Errorf("selected\n  %q\nwant\n  %q", sel.Names, want)
	}
	for _, n := range []string{"bochs", "snd_hda_intel"} {
		if contains(sel.Names, n) {
			t.Errorf("%s matched present hardware but lives in a denied directory (graphics, sound)", n)
		}
	}
	if !reflect.DeepEqual(sel.Builtin, []string{"ext4"}) {
		t.Errorf("builtin = %q, want [ext4]", sel.Builtin)
	}
	if !reflect.DeepEqual(sel.Missing, []string{"nosuch"}) {
		t.Errorf("missing = %q, want [nosuch]", sel.Missing)
	}
	if !reflect.DeepEqual(sel.Hardware, []string{"crc32c_intel", "e1000", "virtio_net", "virtio_pci"}) {
		t.Errorf("hardware = %q", sel.Hardware)
	}
	// Paths keep modules.dep order, so dependencies come first in the file.
	if sel.Paths[0] != "kernel/drivers/virtio/virtio.ko.xz" {
		t.Errorf("first path %q, want modules.dep order", sel.Paths[0])
	}
	if got := sel.EarlyModules(); !reflect.DeepEqual(got, []string{"virtio_pci", "virtio_rng"}) {
		t.Errorf("early modules = %q, want virtio_pci then virtio_rng", got)
	}
}

func TestFilteredIndexFilesOnlyNameCarriedModules(t *testing.T) {
	ix, err := LoadModuleIndex(testModules)
	if err != nil {
		t.Fatal(err)
	}
	sel := ix.Select([]string{"virtio_net", "btrfs"}, nil)
	files := ix.filteredIndexFiles(sel)
	dep := string(files["modules.dep"])
	if !strings.Contains(dep, "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz") {
		t.Errorf("modules.dep lost virtio_net's dependencies:\n%s", dep)
	}
	if strings.Contains(dep, "e1000") || strings.Contains(dep, "vfat") {
		t.Errorf("modules.dep names modules that are not carried:\n%s", dep)
	}
	alias := string(files["modules.alias"])
	if !strings.Contains(alias, "alias virtio:d00000001v* virtio_net") || strings.Contains(alias, "e1000") {
		t.Errorf("modules.alias not filtered to the carried modules:\n%s", alias)
	}
	if sd := string(files["modules.softdep"]); !strings.Contains(sd, "softdep btrfs pre: crc32c") || strings.Contains(sd, "e1000") {
		t.Errorf("modules.softdep = %q", sd)
	}
	if n := strings.Count(string(files["modules.order"]), "\n"); n != len(sel.Paths) {
		t.Errorf("modules.order has %d lines, want %d", n, len(sel.Paths))
	}
}

func TestNeedsFor(t *testing.T) {
	n, err := NeedsFor("ext4", "vfat", "luks", "lvm", "swap")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"wipefs", "blkid", "mkfs.ext4", "mkfs.vfat", "cryptsetup", "lvm", "mkswap"} {
		if !contains(n.Tools, tool) {
			t.Errorf("tools %q lack %s", n.Tools, tool)
		}
	}
	for _, m := range []string{"ext4", "vfat", "nls_cp437", "dm_crypt", "dm_mod"} {
		if !contains(n.Modules, m) {
			t.Errorf("modules %q lack %s", n.Modules, m)
		}
	}
	if _, err := NeedsFor("zfs"); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Errorf("unknown feature: err = %v, want a list of known ones", err)
	}
}
