package disko

import (
	"fmt"
	"strings"
)

func (b *planner) formatPhase() {
	for _, ref := range b.order {
		switch ref.Kind {
		case "disk":
			d := b.l.Disks[ref.Name]
			env := hookEnv("disk", d.Name, d.Device, "", "")
			b.hook(PhaseFormat, d.Path, ref.Name, "preCreateHook", d.Hooks.PreCreate, env)
			b.create(d.Content, ref.Name, d)
			b.hook(PhaseFormat, d.Path, ref.Name, "postCreateHook", d.Hooks.PostCreate, env)
		case "mdadm":
			md := b.l.MDADM[ref.Name]
			env := hookEnv("mdadm", md.Name, md.Device(), "", "")
			b.hook(PhaseFormat, md.Path, "", "preCreateHook", md.Hooks.PreCreate, env)
			var mem []string
			for _, c := range b.members[ref] {
				_, dev := c.Where()
				mem = append(mem, dev)
			}
			lvl := md.Level
			b.add(Op{Op: OpMdadmCreate, Phase: PhaseFormat, Object: md.Path, Device: md.Device(), Name: md.Name, Level: &lvl,
				Metadata: md.Metadata, Members: mem, Summary: fmt.Sprintf("create md array %s (raid%d of %d devices)", md.Device(), md.Level, len(mem))})
			b.create(md.Content, "", nil)
			b.hook(PhaseFormat, md.Path, "", "postCreateHook", md.Hooks.PostCreate, env)
		case "lvm_vg":
			vg := b.l.LVMVGs[ref.Name]
			env := hookEnv("lvm_vg", vg.Name, "", "", "")
			b.hook(PhaseFormat, vg.Path, "", "preCreateHook", vg.Hooks.PreCreate, env)
			var mem []string
			for _, c := range b.members[ref] {
				_, dev := c.Where()
				mem = append(mem, dev)
			}
			b.add(Op{Op: OpVGCreate, Phase: PhaseFormat, Object: vg.Path, Name: vg.Name, Members: mem,
				Summary: fmt.Sprintf("create volume group %s on %s", vg.Name, strings.Join(mem, " "))})
			lvs := vg.SortedLVs()
			for _, lv := range lvs {
				b.add(Op{Op: OpLVCreate, Phase: PhaseFormat, Object: lv.Path, Device: lv.Device, VG: vg.Name, Name: lv.Name,
					Size: lv.Size, LVMType: lv.LVMType, Pool: lv.Pool, Args: splitArgs(lv.ExtraArgs),
					Summary: fmt.Sprintf("create logical volume %s (%s)", lv.Device, lv.Size)})
			}
			for _, lv := range lvs {
				b.create(lv.Content, "", nil)
			}
			b.hook(PhaseFormat, vg.Path, "", "postCreateHook", vg.Hooks.PostCreate, env)
		}
	}
}

// partOf finds the state of the partition a content sits on, for skip
// predictions.
func (b *planner) partState(disk string, idx int) *PartState {
	d := b.l.Disks[disk]
	if d == nil || idx == 0 {
		return nil
	}
	ex := b.existing(d)
	if ex == nil || !b.kept[disk][idx] {
		return nil
	}
	return ex.partition(idx)
}

// create adds the format ops of content c (and everything inside it).
// disk and d are set while inside a disk, to tie ops to its tree.
func (b *planner) create(c Content, disk string, d *Disk) {
	var cur *Signature
	if d != nil {
		if ex := b.existing(d); ex != nil && !ex.Missing {
			cur = ex.Signature
		}
	}
	switch c.(type) {
	case *GPT, *Table:
		cur = nil // checked by layoutGPT and at execution
	}
	b.createIn(c, disk, d, 0, cur)
}

func (b *planner) createIn(c Content, disk string, d *Disk, idx int, cur *Signature) {
	if c == nil {
		return
	}
	p, dev := c.Where()
	h := c.hooks()
	env := hookEnv(c.Kind(), "", dev, "", "")
	switch x := c.(type) {
	case *Filesystem:
		env["format"], env["mountpoint"] = x.Format, x.Mountpoint
	case *LUKS:
		env["name"] = x.Name
	}
	b.hook(PhaseFormat, p, disk, "preCreateHook", h.PreCreate, env)
	defer b.hook(PhaseFormat, p, disk, "postCreateHook", h.PostCreate, env)
	skipIf := func(want string) string {
		if cur == nil {
			return ""
		}
		if want == "" || cur.Type == want {
			return fmt.Sprintf("%s is already there", cur.Type)
		}
		b.errorf(p, "%s holds %s, not %s: format will not overwrite it; use mode destroy,format,mount to start over", dev, cur, want)
		return ""
	}
	switch x := c.(type) {
	case *GPT:
		b.createGPT(x, p, disk, dev, d)
	case *Table:
		b.createTable(x, p, disk, dev, d)
	case *Filesystem:
		b.add(Op{Op: OpMkfs, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Format: x.Format, Args: x.ExtraArgs,
			Skip: skipIf(x.Format), Summary: fmt.Sprintf("format %s as %s", dev, x.Format)})
	case *Btrfs:
		b.add(Op{Op: OpMkfs, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Format: "btrfs", Args: x.ExtraArgs,
			Skip: skipIf("btrfs"), Summary: fmt.Sprintf("format %s as btrfs", dev)})
		for _, sv := range x.SortedSubvolumes() {
			senv := map[string]string{"type": "btrfs_subvol", "name": sv.Name, "device": dev}
			b.hook(PhaseFormat, sv.Path, disk, "preCreateHook", sv.Hooks.PreCreate, senv)
			b.add(Op{Op: OpSubvolume, Phase: PhaseFormat, Object: sv.Path, Disk: disk, Device: dev, PartIndex: idx, Subvolume: sv.Name, Args: sv.ExtraArgs,
				Summary: fmt.Sprintf("create subvolume %s (unless it exists)", sv.Name)})
			for _, k := range sortedKeys(sv.Swap) {
				sw := sv.Swap[k]
				b.add(Op{Op: OpSwapfile, Phase: PhaseFormat, Object: sw.Path, Disk: disk, Device: dev, PartIndex: idx, Subvolume: sv.Name, FilePath: sw.FilePath, Size: sw.Size,
					Summary: fmt.Sprintf("create swap file %s in subvolume %s (%s, unless it exists)", sw.FilePath, sv.Name, sw.Size)})
			}
			b.hook(PhaseFormat, sv.Path, disk, "postCreateHook", sv.Hooks.PostCreate, senv)
		}
		for _, k := range sortedKeys(x.Swap) {
			sw := x.Swap[k]
			b.add(Op{Op: OpSwapfile, Phase: PhaseFormat, Object: sw.Path, Disk: disk, Device: dev, PartIndex: idx, FilePath: sw.FilePath, Size: sw.Size,
				Summary: fmt.Sprintf("create swap file %s at the top of the filesystem (%s, unless it exists)", sw.FilePath, sw.Size)})
		}
	case *Swap:
		if x.RandomEncryption {
			return // the installed system makes it at every boot
		}
		b.add(Op{Op: OpMkswap, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Args: splitArgs(x.ExtraArgs),
			Skip: skipIf("swap"), Summary: fmt.Sprintf("format %s as swap", dev)})
	case *LUKS:
		key := luksKey(x)
		b.add(Op{Op: OpLuksFormat, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: key,
			Skip: skipIf("crypto_LUKS"), Summary: fmt.Sprintf("encrypt %s with LUKS", dev)})
		b.add(Op{Op: OpLuksOpen, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: key,
			Summary: fmt.Sprintf("open %s as %s (unless open)", dev, x.MapperDevice())})
		for _, f := range x.AdditionalKeyFiles {
			k2 := *key
			k2.NewKeyFile = f
			b.add(Op{Op: OpLuksAddKey, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: &k2,
				Summary: fmt.Sprintf("add key file %s to %s (only right after formatting)", f, dev)})
		}
		b.createIn(x.Content, disk, d, 0, nil)
	case *LVMPV:
		b.add(Op{Op: OpPVCreate, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, VG: x.VG,
			Skip: skipIf("LVM2_member"), Summary: fmt.Sprintf("make %s an LVM physical volume for %s", dev, x.VG)})
	case *MDRaid, *ZFS, *BcachefsMember:
		// Members are used when their array, pool or filesystem is created.
	}
}

// createGPT adds the GPT op, the hybrid MBR if asked, and what each
// partition holds.
func (b *planner) createGPT(x *GPT, p, disk, dev string, d *Disk) {
	var specs []PartSpec
	for _, pt := range x.Sorted {
		var attrs uint64
		for _, a := range pt.Attributes {
			if a >= 0 && a < 64 {
				attrs |= 1 << uint(a)
			}
		}
		ps := PartSpec{Index: pt.Index, Key: pt.Key, Device: pt.Device, Label: pt.Label, TypeGUID: pt.TypeGUID, UUID: pt.UUID, Attributes: attrs,
			Start: pt.Start, End: pt.End, Alignment: pt.Alignment}
		if pl, ok := b.placed[disk][pt.Index]; ok && d != nil {
			ps.StartSector, ps.EndSector = pl.Start, pl.End
		}
		specs = append(specs, ps)
	}
	op := Op{Op: OpGPT, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Partitions: specs,
		Summary: fmt.Sprintf("write a GPT with %s to %s and tell the kernel (BLKPG)", plural(len(specs), "partition"), dev)}
	if d != nil && len(b.kept[disk]) == len(x.Sorted) && len(x.Sorted) > 0 {
		op.Skip = "all partitions exist already"
	}
	b.add(op)
	var hybrid []string
	for _, pt := range x.Sorted {
		if pt.Hybrid != nil {
			hybrid = append(hybrid, fmt.Sprint(pt.Index))
		}
	}
	if len(hybrid) > 0 {
		spec := strings.Join(hybrid, ":")
		if !x.EfiGptPartitionFirst {
			spec += ":EE"
		}
		cmds := [][]string{{"sgdisk", "-h", spec, dev}}
		for _, pt := range x.Sorted {
			if pt.Hybrid == nil {
				continue
			}
			if pt.Hybrid.MBRPartitionType != "" {
				cmds = append(cmds, []string{"sfdisk", "--label-nested", "dos", "--part-type", dev, fmt.Sprint(pt.Index), pt.Hybrid.MBRPartitionType})
			}
			if pt.Hybrid.MBRBootableFlag {
				cmds = append(cmds, []string{"sfdisk", "--label-nested", "dos", "--activate", dev, fmt.Sprint(pt.Index)})
			}
		}
		b.add(Op{Op: OpHybridMBR, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Commands: cmds, Argv: []string{},
			Summary: fmt.Sprintf("write a hybrid MBR with partitions %s", spec)})
	}
	for _, pt := range x.Sorted {
		var sig *Signature
		if ps := b.partState(disk, pt.Index); ps != nil {
			sig = ps.Signature
		}
		b.createIn(pt.Content, disk, d, partRef(pt), sig)
	}
}

// createTable adds the parted op of a legacy table and what each
// partition holds.
func (b *planner) createTable(x *Table, p, disk, dev string, d *Disk) {
	cmds := [][]string{{"parted", "-s", dev, "--", "mklabel", x.Format}}
	for _, tp := range x.Partitions {
		kind := tp.PartType
		if x.Format == "gpt" {
			kind = tp.Name
		}
		mk := []string{"parted", "-s", dev, "--", "mkpart", kind}
		if tp.FsType != "" {
			mk = append(mk, tp.FsType)
		}
		cmds = append(cmds, append(mk, tp.Start, tp.End))
		if tp.Bootable {
			cmds = append(cmds, []string{"parted", "-s", dev, "--", "set", fmt.Sprint(tp.Index), "boot", "on"})
		}
		for _, f := range tp.Flags {
			cmds = append(cmds, []string{"parted", "-s", dev, "--", "set", fmt.Sprint(tp.Index), f, "on"})
		}
	}
	b.add(Op{Op: OpParted, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Commands: cmds, Argv: []string{}, Destroys: true,
		Summary: fmt.Sprintf("write a %s table with %d partitions to %s with parted", x.Format, len(x.Partitions), dev)})
	for _, tp := range x.Partitions {
		b.createIn(tp.Content, disk, d, 0, nil)
	}
}

// partRef is the partition number ops use to find a partition by disk
// and number; 0 when the layout names the partition's device itself.
func partRef(pt *Partition) int {
	if pt.DefaultDevice {
		return pt.Index
	}
	return 0
}

// luksKey gathers how cryptsetup gets the key for x.
func luksKey(x *LUKS) *KeySpec {
	k := &KeySpec{KeyFile: x.SettingsKeyFile(), PasswordFile: x.PasswordFile, AskPassword: x.AskPassword,
		ExtraFormatArgs: splitArgs(x.ExtraFormatArgs), ExtraOpenArgs: splitArgs(x.ExtraOpenArgs)}
	if k.KeyFile == "" && k.PasswordFile == "" && x.KeyFile != "" {
		k.KeyFile = x.KeyFile // deprecated disko option, same meaning as settings.keyFile
	}
	if v, ok := x.Settings["keyFileSize"]; ok {
		if n, ok := toInt(v); ok {
			k.KeyFileSize = &n
		}
	}
	if v, ok := x.Settings["keyFileOffset"]; ok {
		if n, ok := toInt(v); ok {
			k.KeyFileOffset = &n
		}
	}
	k.AllowDiscards, _ = x.Settings["allowDiscards"].(bool)
	k.BypassWorkqueues, _ = x.Settings["bypassWorkqueues"].(bool)
	return k
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}
