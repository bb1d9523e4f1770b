package disko

import (
	"fmt"
	"path"
	"strings"
)

// mountEntry is one thing the mount phase mounts.
type mountEntry struct {
	obj, disk, device string
	partIndex         int
	fstype            string
	mountpoint        string
	options           []string
	hooks             Hooks
	kind, name        string
}

// swapEntry is one swap the mount phase activates.
type swapEntry struct {
	obj, disk, device string
	partIndex         int
	file              string // absolute path below the root, for swap files
	priority          *int
	discard           string
	options           []string
	hooks             Hooks
}

// collect gathers mounts, swaps, LUKS containers and VGs in device order.
func (b *planner) collect() (mounts []mountEntry, swaps []swapEntry, luks []Op, vgs []string) {
	var visit func(c Content, disk string, idx int)
	visit = func(c Content, disk string, idx int) {
		if c == nil {
			return
		}
		p, dev := c.Where()
		switch x := c.(type) {
		case *GPT:
			for _, pt := range x.Sorted {
				visit(pt.Content, disk, partRef(pt))
			}
		case *Table:
			for _, tp := range x.Partitions {
				visit(tp.Content, disk, 0)
			}
		case *Filesystem:
			if x.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: p, disk: disk, device: dev, partIndex: idx, fstype: x.Format, mountpoint: x.Mountpoint,
					options: x.MountOptions, hooks: x.Hooks, kind: "filesystem"})
			}
		case *Btrfs:
			if x.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: p, disk: disk, device: dev, partIndex: idx, fstype: "btrfs", mountpoint: x.Mountpoint,
					options: x.MountOptions, hooks: x.Hooks, kind: "btrfs"})
			}
			for _, sv := range x.SortedSubvolumes() {
				if sv.Mountpoint != "" {
					mounts = append(mounts, mountEntry{obj: sv.Path, disk: disk, device: dev, partIndex: idx, fstype: "btrfs", mountpoint: sv.Mountpoint,
						options: append(append([]string{}, sv.MountOptions...), "subvol="+sv.Name), hooks: sv.Hooks, kind: "btrfs_subvol", name: sv.Name})
				}
				for _, k := range sortedKeys(sv.Swap) {
					if sw := sv.Swap[k]; sw.Mountpoint != "" {
						swaps = append(swaps, swapEntry{obj: sw.Path, disk: disk, device: dev, file: sw.Mountpoint, priority: sw.Priority, discard: sw.DiscardPolicy, options: sw.Options})
					}
				}
			}
			for _, k := range sortedKeys(x.Swap) {
				if sw := x.Swap[k]; sw.Mountpoint != "" {
					swaps = append(swaps, swapEntry{obj: sw.Path, disk: disk, device: dev, file: sw.Mountpoint, priority: sw.Priority, discard: sw.DiscardPolicy, options: sw.Options})
				}
			}
		case *Swap:
			if !x.RandomEncryption {
				swaps = append(swaps, swapEntry{obj: p, disk: disk, device: dev, partIndex: idx, priority: x.Priority, discard: x.DiscardPolicy, options: x.MountOptions, hooks: x.Hooks})
			}
		case *LUKS:
			luks = append(luks, Op{Op: OpLuksOpen, Phase: PhaseMount, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: luksKey(x),
				Summary: fmt.Sprintf("open %s as %s (unless open)", dev, x.MapperDevice())})
			visit(x.Content, disk, 0)
		}
	}
	for _, ref := range b.order {
		switch ref.Kind {
		case "disk":
			visit(b.l.Disks[ref.Name].Content, ref.Name, 0)
		case "mdadm":
			visit(b.l.MDADM[ref.Name].Content, "", 0)
		case "lvm_vg":
			vg := b.l.LVMVGs[ref.Name]
			vgs = append(vgs, vg.Name)
			for _, lv := range vg.SortedLVs() {
				visit(lv.Content, "", 0)
			}
		case "nodev":
			n := b.l.Nodevs[ref.Name]
			if n.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: n.Path, device: n.Device, fstype: n.FSType, mountpoint: n.Mountpoint, options: n.MountOptions, hooks: n.Hooks, kind: "nodev"})
			}
		}
	}
	stableSort(mounts, func(a, c mountEntry) bool { return mountpointLess(a.mountpoint, c.mountpoint) })
	return mounts, swaps, luks, vgs
}

func (b *planner) target(mp string) string { return path.Join(b.o.Root, mp) }

// lvNames lists the logical volumes of the VG named vg.
func (b *planner) lvNames(vg string) []string {
	var out []string
	for _, k := range sortedKeys(b.l.LVMVGs) {
		if v := b.l.LVMVGs[k]; v.Name == vg {
			for _, lv := range v.SortedLVs() {
				out = append(out, lv.Name)
			}
		}
	}
	return out
}

func (b *planner) mountPhase() {
	mounts, swaps, luks, vgs := b.collect()
	for _, op := range luks {
		b.add(op)
	}
	for _, vg := range vgs {
		b.add(Op{Op: OpVGActivate, Phase: PhaseMount, Object: b.l.Path, VG: vg, Members: b.lvNames(vg), Summary: "activate the logical volumes of " + vg})
	}
	for _, m := range mounts {
		env := hookEnv(m.kind, m.name, m.device, m.fstype, m.mountpoint)
		b.hook(PhaseMount, m.obj, m.disk, "preMountHook", m.hooks.PreMount, env)
		b.add(Op{Op: OpMount, Phase: PhaseMount, Object: m.obj, Disk: m.disk, Device: m.device, PartIndex: m.partIndex, Format: m.fstype,
			Mountpoint: m.mountpoint, Options: m.options,
			Summary: fmt.Sprintf("mount %s on %s (%s, %s)", m.device, b.target(m.mountpoint), m.fstype, strings.Join(m.options, ","))})
		b.hook(PhaseMount, m.obj, m.disk, "postMountHook", m.hooks.PostMount, env)
	}
	for _, s := range swaps {
		env := hookEnv("swap", "", s.device, "", "")
		b.hook(PhaseMount, s.obj, s.disk, "preMountHook", s.hooks.PreMount, env)
		what := s.device
		if s.file != "" {
			what = b.target(s.file)
		}
		b.add(Op{Op: OpSwapon, Phase: PhaseMount, Object: s.obj, Disk: s.disk, Device: s.device, PartIndex: s.partIndex, FilePath: s.file,
			Priority: s.priority, Discard: s.discard, Options: s.options, Summary: "swapon " + what})
		b.hook(PhaseMount, s.obj, s.disk, "postMountHook", s.hooks.PostMount, env)
	}
}

func (b *planner) unmountPhase() {
	mounts, swaps, luks, vgs := b.collect()
	for i := len(swaps) - 1; i >= 0; i-- {
		s := swaps[i]
		what := s.device
		if s.file != "" {
			what = b.target(s.file)
		}
		env := hookEnv("swap", "", s.device, "", "")
		b.hook(PhaseUnmount, s.obj, s.disk, "preUnmountHook", s.hooks.PreUnmount, env)
		b.add(Op{Op: OpSwapoff, Phase: PhaseUnmount, Object: s.obj, Disk: s.disk, Device: s.device, PartIndex: s.partIndex, FilePath: s.file, Summary: "swapoff " + what})
		b.hook(PhaseUnmount, s.obj, s.disk, "postUnmountHook", s.hooks.PostUnmount, env)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		env := hookEnv(m.kind, m.name, m.device, m.fstype, m.mountpoint)
		b.hook(PhaseUnmount, m.obj, m.disk, "preUnmountHook", m.hooks.PreUnmount, env)
		b.add(Op{Op: OpUmount, Phase: PhaseUnmount, Object: m.obj, Disk: m.disk, Device: m.device, PartIndex: m.partIndex, Mountpoint: m.mountpoint,
			Summary: "unmount " + b.target(m.mountpoint)})
		b.hook(PhaseUnmount, m.obj, m.disk, "postUnmountHook", m.hooks.PostUnmount, env)
	}
	for i := len(vgs) - 1; i >= 0; i-- {
		b.add(Op{Op: OpVGDeactivate, Phase: PhaseUnmount, Object: b.l.Path, VG: vgs[i], Members: b.lvNames(vgs[i]), Summary: "deactivate the logical volumes of " + vgs[i]})
	}
	for i := len(luks) - 1; i >= 0; i-- {
		op := luks[i]
		b.add(Op{Op: OpLuksClose, Phase: PhaseUnmount, Object: op.Object, Disk: op.Disk, Device: op.Device, Name: op.Name, Summary: "close /dev/mapper/" + op.Name})
	}
}
