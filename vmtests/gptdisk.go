//go:build linux

package vmtests

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// The bootable disk's layout, in 512-byte sectors: a BIOS boot partition for
// GRUB's core image, an ESP with GRUB's EFI binary, then the root filesystem.
// The same disk boots under SeaBIOS and OVMF.
const (
	sectorSize     = 512
	biosBootStart  = 2048
	biosBootEnd    = 4095
	espStart       = 4096
	espSectors     = 64 << 20 / sectorSize // FAT32 needs >= ~33 MiB
	rootStart      = espStart + espSectors
	diskTailSlack  = 2048 // room for the backup GPT, kept 1 MiB aligned
	diskNameOnHost = "disk.img"
)

// DiskRootPartition is the root filesystem's partition on the bootable disk,
// as the guest's kernel names it.
const DiskRootPartition = "/dev/vda3"

// BootDisk returns the image's bootable GPT disk (BIOS boot partition, ESP,
// root), making it from the root filesystem on first use. GRUB is placed on
// it the way grub-install would, without loop devices or mounts: its boot
// sector is patched to find the core image in the BIOS boot partition, and
// the EFI binary is copied to \EFI\BOOT\BOOTX64.EFI.
func (img *Image) BootDisk(ctx context.Context) (string, error) {
	path := filepath.Join(img.Dir, diskNameOnHost)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	lock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", err
	}
	defer lock.unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp := path + fmt.Sprintf(".tmp-%d", os.Getpid())
	os.Remove(tmp)
	defer os.Remove(tmp)
	if err := writeBootDisk(tmp, img.Dir, img.RootFS); err != nil {
		return "", fmt.Errorf("make the bootable disk of image %s: %w", img.Key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return path, nil
}

func writeBootDisk(path, dir, rootFS string) error {
	st, err := os.Stat(rootFS)
	if err != nil {
		return err
	}
	if st.Size()%sectorSize != 0 {
		return fmt.Errorf("%s: size %d is not a whole number of sectors", rootFS, st.Size())
	}
	rootSectors := uint64(st.Size() / sectorSize)
	size := int64(rootStart+rootSectors+diskTailSlack) * sectorSize
	d, err := diskfs.Create(path, size, diskfs.SectorSize512)
	if err != nil {
		return err
	}
	table := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{
			{Index: 1, Start: biosBootStart, End: biosBootEnd, Type: gpt.BIOSBoot, Name: "bios"},
			{Index: 2, Start: espStart, End: espStart + espSectors - 1, Type: gpt.EFISystemPartition, Name: "esp"},
			{Index: 3, Start: rootStart, End: rootStart + rootSectors - 1, Type: gpt.LinuxFilesystem, Name: "root"},
		},
	}
	if err := d.Partition(table); err != nil {
		d.Close()
		return err
	}
	efi, err := os.ReadFile(filepath.Join(dir, "bootx64.efi"))
	if err != nil {
		d.Close()
		return err
	}
	if err := writeESP(d, efi); err != nil {
		d.Close()
		return fmt.Errorf("ESP: %w", err)
	}
	if err := d.Close(); err != nil {
		return err
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := os.Open(rootFS)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := copySparse(f, in, rootStart*sectorSize); err != nil {
		return fmt.Errorf("copy the root filesystem: %w", err)
	}
	if err := writeGrubBIOS(f, dir); err != nil {
		return err
	}
	return f.Sync()
}

func writeESP(d *disk.Disk, efi []byte) error {
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 2, FSType: filesystem.TypeFat32, VolumeLabel: "ESP"})
	if err != nil {
		return err
	}
	if err := fs.Mkdir("/EFI/BOOT"); err != nil {
		return err
	}
	f, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_CREATE|os.O_RDWR)
	if err != nil {
		return err
	}
	if _, err := f.Write(efi); err != nil {
		return err
	}
	return f.Close()
}

// Offsets in GRUB's i386-pc boot.img and diskboot.img (grub/i386/pc/boot.h).
const (
	grubKernelSector = 0x5c // LBA of core.img's first sector, 8 bytes LE
	grubBootDrive    = 0x64 // 0xff: use the drive the BIOS booted from
	grubDriveCheck   = 0x66 // a jmp that works around BIOSes passing a bad drive
	mbrCodeSize      = 440  // boot code; the disk signature and partitions follow
	blocklistOffset  = sectorSize - 12
)

// writeGrubBIOS does what grub-bios-setup does for a GPT disk with a BIOS
// boot partition: boot.img's code goes into the MBR and points at core.img,
// whose first sector (diskboot.img) gets the location of the rest.
func writeGrubBIOS(f *os.File, dir string) error {
	boot, err := os.ReadFile(filepath.Join(dir, "grub-boot.img"))
	if err != nil {
		return err
	}
	core, err := os.ReadFile(filepath.Join(dir, "grub-core.img"))
	if err != nil {
		return err
	}
	if len(boot) != sectorSize {
		return fmt.Errorf("grub boot.img is %d bytes, want %d", len(boot), sectorSize)
	}
	if max := (biosBootEnd - biosBootStart + 1) * sectorSize; len(core) > max || len(core) < sectorSize {
		return fmt.Errorf("grub core.img is %d bytes, the BIOS boot partition holds %d", len(core), max)
	}
	code := boot[:mbrCodeSize]
	binary.LittleEndian.PutUint64(code[grubKernelSector:], biosBootStart)
	code[grubBootDrive] = 0xff
	code[grubDriveCheck], code[grubDriveCheck+1] = 0x90, 0x90 // nop the jmp, as grub-bios-setup does for hard disks

	// grub-mkimage already set the blocklist's length (sectors after the
	// first) and segment; only the start is the installer's to fill in.
	sectors := (len(core) + sectorSize - 1) / sectorSize
	if n := binary.LittleEndian.Uint16(core[blocklistOffset+8:]); int(n) != sectors-1 {
		return fmt.Errorf("grub core.img blocklist says %d sectors, the image has %d: not an i386-pc core image?", n, sectors-1)
	}
	binary.LittleEndian.PutUint64(core[blocklistOffset:], biosBootStart+1)

	if _, err := f.WriteAt(code, 0); err != nil {
		return err
	}
	_, err = f.WriteAt(core, biosBootStart*sectorSize)
	return err
}

// overlayFor creates a qcow2 overlay over a raw base image, so a VM can write
// its disk while the cached image stays as built.
func overlayFor(ctx context.Context, r commandRunner, base, overlay string) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	_, err = r.run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", abs, overlay)
	return err
}
