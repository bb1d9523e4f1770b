package apply

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// unmountAll unmounts everything at or below root, deepest first, after
// turning off swap files that live there.
func (x *executor) unmountAll(root string) (string, error) {
	root = filepath.Clean(root)
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	under := func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	swaps, err := readSwaps()
	if err != nil {
		return "", err
	}
	n := 0
	for _, s := range swaps {
		if !s.IsDev && under(s.Path) {
			if err := swapoff(s.Path); err != nil {
				return "", fmt.Errorf("swapoff %s: %w", s.Path, err)
			}
			x.o.logf("swapoff %s", s.Path)
			n++
		}
	}
	mounts, err := readMounts()
	if err != nil {
		return "", err
	}
	var targets []string
	for _, m := range mounts {
		if under(m.Mountpoint) {
			targets = append(targets, m.Mountpoint)
		}
	}
	if err := x.unmountList(targets); err != nil {
		return "", err
	}
	if n+len(targets) == 0 {
		return "nothing mounted below " + root, nil
	}
	return "", nil
}

// unmountList unmounts mountpoints given in mount order, last first.
func (x *executor) unmountList(targets []string) error {
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		if err := unix.Unmount(t, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				continue // already gone (a parent took it along)
			}
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("umount %s: busy: something still uses it (see fuser -vm %s)", t, t)
			}
			return fmt.Errorf("umount %s: %w", t, err)
		}
		x.o.logf("umount %s", t)
	}
	return nil
}

// deactivate releases everything built on a disk: swap on it, mounts of
// it (and anything mounted inside those), then LUKS, LVM and md holders,
// deepest first.
func (x *executor) deactivate(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	if err := x.res.refresh(); err != nil {
		return "", err
	}
	n, err := devOf(node)
	if err != nil {
		return "", err
	}
	b := byDevNum(x.res.devs, n)
	if b == nil {
		return "", fmt.Errorf("%s is not in sysfs", node)
	}
	devs := tree(x.res.devs, b.Name)
	set := map[uint64]bool{}
	for _, d := range devs {
		set[d.devNum()] = true
	}
	mounts, err := readMounts()
	if err != nil {
		return "", err
	}
	mountDev := func(m mountInfo) uint64 {
		if m.Major == 0 && strings.HasPrefix(m.Source, "/dev/") {
			if d, err := devOf(m.Source); err == nil {
				return d
			}
		}
		return unix.Mkdev(m.Major, m.Minor)
	}
	anon := map[uint64]bool{} // filesystem device numbers on the disk (btrfs has anonymous ones)
	var roots []string
	for _, m := range mounts {
		if set[mountDev(m)] {
			anon[unix.Mkdev(m.Major, m.Minor)] = true
			roots = append(roots, m.Mountpoint)
		}
	}
	did := 0
	swaps, err := readSwaps()
	if err != nil {
		return "", err
	}
	for _, s := range swaps {
		if (s.IsDev && set[s.Dev]) || (!s.IsDev && anon[s.Dev]) {
			if err := swapoff(s.Path); err != nil {
				return "", fmt.Errorf("swapoff %s: %w", s.Path, err)
			}
			x.o.logf("swapoff %s", s.Path)
			did++
		}
	}
	var targets []string
	for _, m := range mounts {
		for _, r := range roots {
			if m.Mountpoint == r || strings.HasPrefix(m.Mountpoint, strings.TrimSuffix(r, "/")+"/") {
				targets = append(targets, m.Mountpoint)
				break
			}
		}
	}
	if err := x.unmountList(targets); err != nil {
		return "", err
	}
	did += len(targets)
	vgsDone := map[string]bool{}
	for i := len(devs) - 1; i >= 0; i-- {
		d := devs[i]
		if d.Name == b.Name || d.Disk == b.Name {
			continue
		}
		switch {
		case strings.HasPrefix(d.DMUUID, "CRYPT-"):
			if err := x.run([]string{"cryptsetup", "close", d.DMName}, nil, nil); err != nil {
				return "", err
			}
		case strings.HasPrefix(d.DMUUID, "LVM-"):
			vg := dmVG(d.DMName)
			if vgsDone[vg] {
				continue
			}
			vgsDone[vg] = true
			if err := x.run([]string{"lvm", "vgchange", "-a", "n", vg}, nil, nil); err != nil {
				return "", err
			}
		case d.DMName != "":
			if err := x.run([]string{"dmsetup", "remove", d.DMName}, nil, nil); err != nil {
				return "", err
			}
		case strings.HasPrefix(d.Name, "md"):
			// A stopped array can linger in sysfs for a moment; only a
			// running (or assembling) one needs stopping.
			state := readTrim(filepath.Join(sysfsRoot, d.Name, "md", "array_state"))
			if state == "" || state == "clear" {
				continue
			}
			node, err := ensureNode(d)
			if err != nil {
				return "", err
			}
			if err := x.run([]string{"mdadm", "--stop", node}, nil, nil); err != nil {
				return "", err
			}
		default:
			continue
		}
		did++
	}
	if did == 0 {
		return "nothing on it was in use", nil
	}
	return "", nil
}

// dmVG returns the volume group of an LVM device-mapper name: VG-LV with
// dashes inside names doubled.
func dmVG(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			if i+1 < len(name) && name[i+1] == '-' {
				i++
				continue
			}
			return strings.ReplaceAll(name[:i], "--", "-")
		}
	}
	return name
}

// wipe erases every signature on the disk and its partitions. Partitions
// that are on disk but unknown to the kernel are announced first, so
// that the filesystems inside them are wiped too and cannot come back
// when the same table is written again.
func (x *executor) wipe(op *disko.Op) error {
	node, err := x.dev(op)
	if err != nil {
		return err
	}
	f, size, ss, err := openBlock(node, os.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	if t, err := gpt.Read(f, int(ss), int(ss)); err == nil {
		var want []kpart
		for _, p := range t.Partitions {
			if p.Type != gpt.Unused && p.End >= p.Start && int64(p.End+1)*ss <= size {
				want = append(want, kpart{Index: p.Index, Start: int64(p.Start) * ss, Length: int64(p.End-p.Start+1) * ss})
			}
		}
		if err := syncKernelPartitions(f, want, x.o.logf); err != nil {
			return err
		}
	}
	if err := x.res.refresh(); err != nil {
		return err
	}
	d, _ := devOf(node)
	disk := byDevNum(x.res.devs, d)
	if disk != nil {
		for _, k := range sortedKeys(x.res.devs) {
			if p := x.res.devs[k]; p.Disk == disk.Name {
				pn, err := ensureNode(p)
				if err != nil {
					return err
				}
				if err := x.run([]string{"wipefs", "-a", "-f", pn}, nil, nil); err != nil {
					return err
				}
			}
		}
	}
	if err := x.run(op.ToolArgv(node), nil, nil); err != nil {
		return err
	}
	if err := zeroEnds(f, size); err != nil {
		return fmt.Errorf("zero the partition table areas of %s: %w", node, err)
	}
	if err := syncKernelPartitions(f, nil, x.o.logf); err != nil {
		return err
	}
	return f.Sync()
}

// zeroEnds zeroes the first and last MiB: MBR, both GPTs, md 1.0 and 0.90
// superblocks.
func zeroEnds(f *os.File, size int64) error {
	n := int64(1 << 20)
	if size < 2*n {
		n = size / 2
	}
	zero := make([]byte, n)
	if _, err := f.WriteAt(zero, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(zero, size-n); err != nil {
		return err
	}
	return f.Sync()
}
