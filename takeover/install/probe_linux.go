//go:build linux

package install

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nivis/nivis/internal/mountinfo"
)

// Mount is one line of /proc/self/mountinfo that matters here.
type Mount struct {
	Point  string
	FSType string
	Source string
}

// ParseMountinfo returns the mounts at or below root, in mount order.
func ParseMountinfo(data []byte, root string) []Mount {
	root = filepath.Clean(root)
	var out []Mount
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		p := mountinfo.Unescape(f[4])
		if p != root && !strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/") {
			continue
		}
		m := Mount{Point: p, FSType: f[sep+1], Source: mountinfo.Unescape(f[sep+2])}
		// A later mount on the same point hides the earlier one.
		for i := range out {
			if out[i].Point == p {
				out = append(out[:i], out[i+1:]...)
				break
			}
		}
		out = append(out, m)
	}
	return out
}

func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// FSUUID reads the filesystem (or LUKS) UUID from a device's superblock, as
// blkid reports it: ext2/3/4, xfs, btrfs, vfat and LUKS.
func FSUUID(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, 0x10000+0x1000)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF {
		return "", err
	}
	return fsUUIDFrom(b[:n])
}

func fsUUIDFrom(b []byte) (string, error) {
	switch {
	case len(b) >= 0xa8+40 && bytes.HasPrefix(b, []byte("LUKS\xba\xbe")):
		u := b[0xa8 : 0xa8+40]
		if i := bytes.IndexByte(u, 0); i >= 0 {
			u = u[:i]
		}
		return string(u), nil
	case len(b) >= 48 && bytes.HasPrefix(b, []byte("XFSB")):
		return formatUUID(b[32:48]), nil
	case len(b) >= 0x10048 && string(b[0x10040:0x10048]) == "_BHRfS_M":
		return formatUUID(b[0x10020:0x10030]), nil
	case len(b) >= 1024+0x78 && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xef53:
		return formatUUID(b[1024+0x68 : 1024+0x78]), nil
	case len(b) >= 0x5a && string(b[0x52:0x57]) == "FAT32":
		id := binary.LittleEndian.Uint32(b[0x43:])
		return fmt.Sprintf("%04X-%04X", id>>16, id&0xffff), nil
	case len(b) >= 0x3e && string(b[0x36:0x39]) == "FAT":
		id := binary.LittleEndian.Uint32(b[0x27:])
		return fmt.Sprintf("%04X-%04X", id>>16, id&0xffff), nil
	}
	return "", fmt.Errorf("no ext4, xfs, btrfs, vfat or LUKS superblock found")
}

// partitionOf finds the whole disk and partition number of a partition
// device through sysfs ("", 0 for a whole disk or a mapped device).
func partitionOf(sysDir, dev string) (disk string, num int) {
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		real = dev
	}
	name := filepath.Base(real)
	b, err := os.ReadFile(filepath.Join(sysDir, "class/block", name, "partition"))
	if err != nil {
		return "", 0
	}
	num, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	link, err := filepath.EvalSymlinks(filepath.Join(sysDir, "class/block", name))
	if err != nil {
		return "", 0
	}
	return "/dev/" + filepath.Base(filepath.Dir(link)), num
}

// PartUUID reads a partition's PARTUUID from its disk's GPT (or MBR
// signature), as blkid reports it.
func PartUUID(sysDir, dev string) (string, error) {
	disk, num := partitionOf(sysDir, dev)
	if disk == "" {
		return "", fmt.Errorf("%s is not a partition", dev)
	}
	f, err := os.Open(disk)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, lbs := range []int64{512, 4096} {
		hdr := make([]byte, 92)
		if _, err := f.ReadAt(hdr, lbs); err != nil {
			continue
		}
		if string(hdr[:8]) != "EFI PART" {
			continue
		}
		start := int64(binary.LittleEndian.Uint64(hdr[72:]))
		count := binary.LittleEndian.Uint32(hdr[80:])
		size := int64(binary.LittleEndian.Uint32(hdr[84:]))
		if num < 1 || uint32(num) > count || size < 128 {
			return "", fmt.Errorf("partition %d not in the GPT of %s", num, disk)
		}
		e := make([]byte, 32)
		if _, err := f.ReadAt(e, start*lbs+int64(num-1)*size); err != nil {
			return "", err
		}
		g := e[16:32]
		return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:16]), nil
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return "", err
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return "", fmt.Errorf("%s has neither a GPT nor an MBR", disk)
	}
	return fmt.Sprintf("%08x-%02x", binary.LittleEndian.Uint32(mbr[440:]), num), nil
}
