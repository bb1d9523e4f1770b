//go:build linux

package vmtests

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// TestWriteBootDisk builds a bootable disk from a stand-in root filesystem
// and GRUB images, and reads it back: the GPT, the root data at its offset,
// the patched boot sector and core image, and the ESP's EFI binary.
func TestWriteBootDisk(t *testing.T) {
	dir := t.TempDir()
	root := make([]byte, 8<<20)
	copy(root[1024:], "root filesystem start")
	copy(root[len(root)-512:], "root filesystem end")
	rootFS := filepath.Join(dir, "root.ext4")
	mustWrite(t, rootFS, root)

	boot := make([]byte, 512)
	for i := range boot[:440] {
		boot[i] = 0xcc
	}
	boot[510], boot[511] = 0x55, 0xaa
	mustWrite(t, filepath.Join(dir, "grub-boot.img"), boot)
	core := make([]byte, 3*512+100) // 4 sectors: blocklist length 3
	binary.LittleEndian.PutUint64(core[blocklistOffset:], 2)
	binary.LittleEndian.PutUint16(core[blocklistOffset+8:], 3)
	copy(core[512:], "rest of core")
	mustWrite(t, filepath.Join(dir, "grub-core.img"), core)
	efi := bytes.Repeat([]byte("EFI!"), 5000)
	mustWrite(t, filepath.Join(dir, "bootx64.efi"), efi)

	disk := filepath.Join(dir, "disk.img")
	if err := writeBootDisk(disk, dir, rootFS); err != nil {
		t.Fatal(err)
	}

	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	tbl, ok := pt.(*gpt.Table)
	if !ok {
		t.Fatalf("partition table %T, want GPT", pt)
	}
	want := []struct {
		start, end uint64
		typ        gpt.Type
	}{
		{biosBootStart, biosBootEnd, gpt.BIOSBoot},
		{espStart, espStart + espSectors - 1, gpt.EFISystemPartition},
		{rootStart, rootStart + uint64(len(root))/512 - 1, gpt.LinuxFilesystem},
	}
	var parts []*gpt.Partition
	for _, p := range tbl.Partitions {
		if p.Type != gpt.Unused {
			parts = append(parts, p)
		}
	}
	if len(parts) != len(want) {
		t.Fatalf("%d partitions, want %d", len(parts), len(want))
	}
	for i, w := range want {
		if p := parts[i]; p.Start != w.start || p.End != w.end || p.Type != w.typ {
			t.Errorf("partition %d: %d-%d %s, want %d-%d %s", i+1, p.Start, p.End, p.Type, w.start, w.end, w.typ)
		}
	}

	raw, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw[rootStart*512 : rootStart*512+uint64(len(root))]; !bytes.Equal(got, root) {
		t.Error("root filesystem not found intact at the root partition")
	}
	mbr := raw[:512]
	if n := binary.LittleEndian.Uint64(mbr[grubKernelSector:]); n != biosBootStart {
		t.Errorf("boot sector points at sector %d, want %d", n, biosBootStart)
	}
	if mbr[grubBootDrive] != 0xff || mbr[grubDriveCheck] != 0x90 || mbr[grubDriveCheck+1] != 0x90 {
		t.Errorf("boot drive byte %#x, drive check %#x %#x", mbr[grubBootDrive], mbr[grubDriveCheck], mbr[grubDriveCheck+1])
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa || mbr[446+4] != 0xee {
		t.Errorf("protective MBR damaged: type %#x, signature %#x %#x", mbr[446+4], mbr[510], mbr[511])
	}
	c := raw[biosBootStart*512:]
	if n := binary.LittleEndian.Uint64(c[blocklistOffset:]); n != biosBootStart+1 {
		t.Errorf("core image blocklist starts at %d, want %d", n, biosBootStart+1)
	}
	if !bytes.Equal(c[512:512+12], []byte("rest of core")) {
		t.Error("core image not in the BIOS boot partition")
	}

	fs, err := d.GetFilesystem(2)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, efi) {
		t.Errorf("ESP BOOTX64.EFI: %d bytes (%v), want the %d-byte binary", len(got), err, len(efi))
	}
}

// TestWriteGrubBIOSRejectsForeignCore keeps a core image whose blocklist
// does not match its size (not made by grub-mkimage -O i386-pc) off disks.
func TestWriteGrubBIOSRejectsForeignCore(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "grub-boot.img"), make([]byte, 512))
	mustWrite(t, filepath.Join(dir, "grub-core.img"), make([]byte, 2048))
	f, err := os.Create(filepath.Join(dir, "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeGrubBIOS(f, dir); err == nil {
		t.Error("a core image with a zero blocklist was accepted")
	}
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
