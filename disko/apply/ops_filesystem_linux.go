package apply

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// makeSignature runs mkfs, mkswap or pvcreate unless the device already
// holds what it would make.
func (x *executor) makeSignature(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	want := op.Format
	switch op.Op {
	case disko.OpMkswap:
		want = "swap"
	case disko.OpPVCreate:
		want = "LVM2_member"
	case disko.OpMkfs:
		if want == "fat" || want == "msdos" {
			want = "vfat"
		}
	}
	sig, err := probeNode(node)
	if err != nil {
		return "", err
	}
	if sig != nil {
		if sig.Type == want {
			return fmt.Sprintf("%s already holds %s", node, sig), nil
		}
		return "", fmt.Errorf("%s holds %s, not %s: format does not overwrite it; use mode destroy,format,mount to start over", node, sig, want)
	}
	return "", x.run(op.ToolArgv(node), nil, nil)
}

// btrfsTop mounts the top of a btrfs filesystem (subvol=/) at a
// temporary directory, once per device.
func (x *executor) btrfsTop(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	if dir, ok := x.btrfsTmp[node]; ok {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", "nivis-btrfs-")
	if err != nil {
		return "", err
	}
	if err := unix.Mount(node, dir, "btrfs", 0, "subvol=/"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount %s (btrfs, subvol=/) on %s: %w", node, dir, err)
	}
	x.btrfsTmp[node] = dir
	return dir, nil
}

func (x *executor) subvolume(op *disko.Op) (string, error) {
	top, err := x.btrfsTop(op)
	if err != nil {
		return "", err
	}
	p := filepath.Join(top, op.Subvolume)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err == nil {
		if st.Ino == 256 { // every btrfs subvolume's root directory
			return "subvolume " + op.Subvolume + " exists", nil
		}
		return "", fmt.Errorf("%s exists in the filesystem but is not a subvolume", op.Subvolume)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return "", x.run(append([]string{"btrfs", "subvolume", "create", p}, op.Args...), nil, nil)
}

func (x *executor) swapfile(op *disko.Op) (string, error) {
	top, err := x.btrfsTop(op)
	if err != nil {
		return "", err
	}
	p := filepath.Join(top, op.Subvolume, op.FilePath)
	if _, err := os.Stat(p); err == nil {
		return "swap file " + op.FilePath + " exists", nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return "", x.run([]string{"btrfs", "filesystem", "mkswapfile", "--size", op.Size, p}, nil, nil)
}
