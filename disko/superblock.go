package disko

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Signature is what a device holds, read from its first bytes the way
// blkid does: a filesystem, swap, a LUKS header, a RAID or LVM member, or
// a partition table.
type Signature struct {
	Type  string `json:"type"` // blkid TYPE: ext4, xfs, btrfs, vfat, swap, crypto_LUKS, LVM2_member, linux_raid_member, zfs_member, f2fs, bcachefs, gpt, dos
	UUID  string `json:"uuid,omitempty"`
	Label string `json:"label,omitempty"`
	// Version is the LUKS or md metadata version, when there is one.
	Version string `json:"version,omitempty"`
}

// IsFilesystem reports whether the signature is a mountable filesystem.
func (s *Signature) IsFilesystem() bool {
	if s == nil {
		return false
	}
	switch s.Type {
	case "swap", "crypto_LUKS", "LVM2_member", "linux_raid_member", "zfs_member", "gpt", "dos", "bcache":
		return false
	}
	return true
}

func (s *Signature) String() string {
	if s == nil {
		return "nothing"
	}
	var b strings.Builder
	b.WriteString(s.Type)
	if s.Label != "" {
		fmt.Fprintf(&b, " %q", s.Label)
	}
	if s.UUID != "" {
		fmt.Fprintf(&b, " %s", s.UUID)
	}
	return b.String()
}

// Probe reads the signature at the start of r, a device or image of size
// bytes. It returns nil when it recognises nothing.
func Probe(r io.ReaderAt, size int64) (*Signature, error) {
	buf := make([]byte, 72*1024)
	n, err := r.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		if n == 0 {
			return nil, fmt.Errorf("read signature: %w", err)
		}
	}
	buf = buf[:n]
	for _, f := range []func([]byte) *Signature{probeLUKS, probeXFS, probeExt, probeBtrfs, probeF2FS, probeBcachefs, probeSwap, probeMDAt(4096), probeMDAt(0), probeLVM, probeFAT} {
		if s := f(buf); s != nil {
			return s, nil
		}
	}
	// md metadata 1.0 and 0.90 live at the end of the device.
	if size > 128*1024 {
		tail := make([]byte, 128*1024)
		if m, _ := r.ReadAt(tail, size-int64(len(tail))); m == len(tail) {
			if s := probeMDTail(tail, size); s != nil {
				return s, nil
			}
		}
	}
	if s := probeZFS(r, size); s != nil {
		return s, nil
	}
	if s := probePartTable(buf); s != nil {
		return s, nil
	}
	return nil, nil
}

func at(b []byte, off, n int) []byte {
	if off < 0 || off+n > len(b) {
		return nil
	}
	return b[off : off+n]
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), " ")
}

func fmtUUID(b []byte) string {
	if len(b) != 16 || bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func probeExt(b []byte) *Signature {
	sb := at(b, 1024, 1024)
	if sb == nil || binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return nil
	}
	compat := binary.LittleEndian.Uint32(sb[0x5C:])
	incompat := binary.LittleEndian.Uint32(sb[0x60:])
	const (
		hasJournal  = 0x4
		journalDev  = 0x8
		extents     = 0x40
		bit64       = 0x80
		flexBG      = 0x200
		ext4Feature = extents | bit64 | flexBG | 0x10000 /*inline data*/ | 0x2000 /*csum seed*/ | 0x1000 /*dirdata*/ | 0x400 /*ea inode*/ | 0x800 /*dirdata*/
	)
	t := "ext2"
	switch {
	case incompat&journalDev != 0:
		t = "jbd"
	case incompat&ext4Feature != 0:
		t = "ext4"
	case compat&hasJournal != 0:
		t = "ext3"
	}
	return &Signature{Type: t, UUID: fmtUUID(sb[0x68:0x78]), Label: cstr(sb[0x78:0x88])}
}

func probeXFS(b []byte) *Signature {
	sb := at(b, 0, 512)
	if sb == nil || string(sb[0:4]) != "XFSB" {
		return nil
	}
	return &Signature{Type: "xfs", UUID: fmtUUID(sb[32:48]), Label: cstr(sb[108:120])}
}

func probeBtrfs(b []byte) *Signature {
	sb := at(b, 0x10000, 4096)
	if sb == nil || string(sb[0x40:0x48]) != "_BHRfS_M" {
		return nil
	}
	return &Signature{Type: "btrfs", UUID: fmtUUID(sb[0x20:0x30]), Label: cstr(sb[0x12B : 0x12B+256])}
}

func probeF2FS(b []byte) *Signature {
	sb := at(b, 1024, 1024)
	if sb == nil || binary.LittleEndian.Uint32(sb[0:4]) != 0xF2F52010 {
		return nil
	}
	s := &Signature{Type: "f2fs", UUID: fmtUUID(sb[0x6C:0x7C])}
	// The volume name is UTF-16LE, 512 units.
	if name := at(sb, 0x7C, 1024-0x7C); name != nil {
		u := make([]uint16, 0, len(name)/2)
		for i := 0; i+1 < len(name); i += 2 {
			c := binary.LittleEndian.Uint16(name[i:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		s.Label = string(utf16.Decode(u))
	}
	return s
}

func probeBcachefs(b []byte) *Signature {
	sb := at(b, 4096, 256)
	magic := []byte{0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d, 0x81}
	if sb == nil || !bytes.Equal(sb[24:40], magic) {
		return nil
	}
	return &Signature{Type: "bcachefs", UUID: fmtUUID(sb[56:72]), Label: cstr(sb[72:104])}
}

// probeSwap looks for the swap magic at the end of the first page, for
// the page sizes Linux uses.
func probeSwap(b []byte) *Signature {
	for _, page := range []int{4096, 8192, 16384, 65536} {
		m := at(b, page-10, 10)
		if m == nil {
			continue
		}
		switch string(m) {
		case "SWAPSPACE2", "SWAP-SPACE":
			hdr := at(b, 1024, 44)
			s := &Signature{Type: "swap"}
			if hdr != nil && string(m) == "SWAPSPACE2" {
				s.UUID = fmtUUID(hdr[12:28])
				s.Label = cstr(hdr[28:44])
			}
			return s
		case "S1SUSPEND\x00", "S2SUSPEND\x00", "ULSUSPEND\x00", "\xed\xc3\x02\xe9\x98\x56\xe5\x0c", "LINHIB0001":
			return &Signature{Type: "swsuspend"}
		}
	}
	return nil
}

func probeLUKS(b []byte) *Signature {
	h := at(b, 0, 592)
	if h == nil || !bytes.Equal(h[0:6], []byte("LUKS\xba\xbe")) {
		return nil
	}
	v := binary.BigEndian.Uint16(h[6:8])
	s := &Signature{Type: "crypto_LUKS", UUID: cstr(h[168:208]), Version: fmt.Sprint(v)}
	if v == 2 {
		s.Label = cstr(h[24:72])
	}
	return s
}

func probeLVM(b []byte) *Signature {
	for sec := 0; sec < 4; sec++ {
		l := at(b, sec*512, 512)
		if l == nil || string(l[0:8]) != "LABELONE" || string(l[24:32]) != "LVM2 001" {
			continue
		}
		off := int(binary.LittleEndian.Uint32(l[20:24]))
		id := at(l, off, 32)
		if id == nil {
			return &Signature{Type: "LVM2_member"}
		}
		u := string(id)
		// blkid groups LVM's 32-character ids 6-4-4-4-4-4-6.
		uuid := u[0:6] + "-" + u[6:10] + "-" + u[10:14] + "-" + u[14:18] + "-" + u[18:22] + "-" + u[22:26] + "-" + u[26:32]
		return &Signature{Type: "LVM2_member", UUID: uuid}
	}
	return nil
}

const mdMagic = 0xa92b4efc

func probeMDAt(off int) func([]byte) *Signature {
	return func(b []byte) *Signature {
		sb := at(b, off, 256)
		if sb == nil || binary.LittleEndian.Uint32(sb[0:4]) != mdMagic || binary.LittleEndian.Uint32(sb[4:8]) != 1 {
			return nil
		}
		v := "1.2"
		if off == 0 {
			v = "1.1"
		}
		return &Signature{Type: "linux_raid_member", UUID: fmtMDUUID(sb[16:32]), Label: cstr(sb[32:64]), Version: v}
	}
}

func probeMDTail(tail []byte, size int64) *Signature {
	// 1.0: 8 KiB before the end, rounded down to 4 KiB.
	off10 := ((size - 8192) &^ 4095) - (size - int64(len(tail)))
	if sb := at(tail, int(off10), 256); sb != nil && binary.LittleEndian.Uint32(sb[0:4]) == mdMagic && binary.LittleEndian.Uint32(sb[4:8]) == 1 {
		return &Signature{Type: "linux_raid_member", UUID: fmtMDUUID(sb[16:32]), Label: cstr(sb[32:64]), Version: "1.0"}
	}
	// 0.90: the last 64 KiB-aligned 64 KiB block.
	off09 := ((size &^ (65536 - 1)) - 65536) - (size - int64(len(tail)))
	if sb := at(tail, int(off09), 256); sb != nil && binary.LittleEndian.Uint32(sb[0:4]) == mdMagic {
		return &Signature{Type: "linux_raid_member", Version: "0.90"}
	}
	return nil
}

func fmtMDUUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// probeZFS looks for an uberblock in the first vdev label.
func probeZFS(r io.ReaderAt, size int64) *Signature {
	if size < 512*1024 {
		return nil
	}
	buf := make([]byte, 128*1024)
	if n, _ := r.ReadAt(buf, 128*1024); n != len(buf) {
		return nil
	}
	for off := 0; off+8 <= len(buf); off += 1024 {
		v := binary.LittleEndian.Uint64(buf[off:])
		if v == 0x00bab10c || binary.BigEndian.Uint64(buf[off:]) == 0x00bab10c {
			return &Signature{Type: "zfs_member"}
		}
	}
	return nil
}

func probeFAT(b []byte) *Signature {
	bs := at(b, 0, 512)
	if bs == nil || bs[510] != 0x55 || bs[511] != 0xAA {
		return nil
	}
	bps := binary.LittleEndian.Uint16(bs[11:13])
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || bs[13] == 0 {
		return nil
	}
	var id, label []byte
	switch {
	case string(bs[0x52:0x57]) == "FAT32":
		id, label = bs[0x43:0x47], bs[0x47:0x52]
	case string(bs[0x36:0x39]) == "FAT":
		id, label = bs[0x27:0x2B], bs[0x2B:0x36]
	default:
		return nil
	}
	s := &Signature{Type: "vfat", UUID: fmt.Sprintf("%04X-%04X", binary.LittleEndian.Uint16(id[2:4]), binary.LittleEndian.Uint16(id[0:2]))}
	if l := cstr(label); l != "NO NAME" {
		s.Label = l
	}
	return s
}

func probePartTable(b []byte) *Signature {
	if h := at(b, 512, 92); h != nil && string(h[0:8]) == "EFI PART" {
		g := h[56:72]
		// GPT stores the first three GUID fields little-endian.
		u := fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]), binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
		return &Signature{Type: "gpt", UUID: u}
	}
	if bs := at(b, 0, 512); bs != nil && bs[510] == 0x55 && bs[511] == 0xAA {
		for i := 0; i < 4; i++ {
			if bs[446+16*i+4] != 0 {
				return &Signature{Type: "dos", UUID: fmt.Sprintf("%08x", binary.LittleEndian.Uint32(bs[440:444]))}
			}
		}
	}
	return nil
}
