package disko

import (
	"path"
	"regexp"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/nivis/nivis/internal/config"
)

// Host says what the machine that will run the layout can do. A nil Host
// skips host checks: `nivis validate` on an operator's laptop must not
// complain that the laptop lacks mkfs.xfs.
type Host struct {
	// HasTool reports whether an executable is installed.
	HasTool func(name string) bool
	// CanMount reports whether the kernel can mount a filesystem type.
	CanMount func(fstype string) bool
}

var uuidRE = regexp.MustCompile(`^[[:xdigit:]]{8}-[[:xdigit:]]{4}-[[:xdigit:]]{4}-[[:xdigit:]]{4}-[[:xdigit:]]{12}$`)

type validator struct {
	l    *Layout
	r    *config.Report
	h    *Host
	m    Mode
	seen map[string]string // mountpoint -> path that claimed it
	// labels and partition UUIDs must be unique: they name devices.
	labels    map[string]string
	partUUIDs map[string]string
	luksNames map[string]string
	needs     map[string][]string // tool -> paths needing it
}

func (v *validator) errorf(p, format string, args ...any) {
	v.r.Add(config.SevError, p, v.l.Pos.At(p), format, args...)
}

func (v *validator) warnf(p, format string, args ...any) {
	v.r.Add(config.SevWarning, p, v.l.Pos.At(p), format, args...)
}

func (v *validator) need(tool, p string) {
	v.needs[tool] = append(v.needs[tool], p)
}

// Validate checks the layout and adds every problem to r. With a Host it
// also checks that the host has the tools and kernel support the mode
// needs ("not supported on this host: needs zpool").
func (l *Layout) Validate(r *config.Report, h *Host, m Mode) {
	if m == (Mode{}) {
		m = Mode{Format: true, Mount: true}
	}
	v := &validator{l: l, r: r, h: h, m: m, seen: map[string]string{}, labels: map[string]string{},
		partUUIDs: map[string]string{}, luksNames: map[string]string{}, needs: map[string][]string{}}
	if len(l.Disks) == 0 && len(l.Nodevs) == 0 && len(l.MDADM) == 0 && len(l.LVMVGs) == 0 && len(l.Zpools) == 0 {
		v.errorf(l.Path, "no devices: disko.devices has no disk, mdadm, lvm_vg, zpool or nodev")
	}
	devs := map[string]string{}
	for _, k := range sortedKeys(l.Disks) {
		d := l.Disks[k]
		dp := config.Key(d.Path, "device")
		if d.Device != "" && !strings.HasPrefix(d.Device, "/") {
			v.errorf(dp, "device %q must be an absolute path like /dev/sda or /dev/disk/by-id/...", d.Device)
		}
		if other, dup := devs[d.Device]; dup && d.Device != "" {
			v.errorf(dp, "device %s is also used by %s: two disks cannot be the same device", d.Device, other)
		}
		devs[d.Device] = d.Path
		v.hooks(d.Path, d.Hooks)
		v.content(d.Content, d.Path)
		if m.Destroy && d.Destroy {
			v.need("wipefs", d.Path)
		}
	}
	order, cycle := l.sortDevices()
	_ = order
	if len(cycle) > 0 {
		v.errorf(l.Path, "devices depend on each other in a cycle: %s", refsString(cycle))
	}
	members := l.members(l.devices())
	for _, k := range sortedKeys(l.MDADM) {
		md := l.MDADM[k]
		v.hooks(md.Path, md.Hooks)
		switch md.Metadata {
		case "1", "1.0", "1.1", "1.2", "default", "ddf", "imsm":
		default:
			v.errorf(config.Key(md.Path, "metadata"), "metadata %q: use one of 1, 1.0, 1.1, 1.2, default, ddf, imsm", md.Metadata)
		}
		switch md.Level {
		case -1, 0, 1, 4, 5, 6, 10:
		default:
			v.errorf(config.Key(md.Path, "level"), "level %d: mdadm supports 0, 1, 4, 5, 6, 10 (and -1 for linear)", md.Level)
		}
		if len(members[DeviceRef{"mdadm", k}]) == 0 {
			v.errorf(md.Path, "mdadm %q has no members: no content of type mdraid names it (name = %q)", k, md.Name)
		}
		v.need("mdadm", md.Path)
		v.content(md.Content, md.Path)
	}
	for _, k := range sortedKeys(l.LVMVGs) {
		vg := l.LVMVGs[k]
		v.hooks(vg.Path, vg.Hooks)
		if len(members[DeviceRef{"lvm_vg", k}]) == 0 {
			v.errorf(vg.Path, "volume group %q has no physical volumes: no content of type lvm_pv names it (vg = %q)", k, vg.Name)
		}
		v.need("lvm", vg.Path)
		for _, lk := range sortedKeys(vg.LVs) {
			lv := vg.LVs[lk]
			sp := config.Key(lv.Path, "size")
			switch {
			case lv.Size == "":
				v.errorf(sp, "logical volume %q needs a size (like 10G or 100%%FREE)", lk)
			case strings.Contains(lv.Size, "%"):
				if !lvmExtentsRE.MatchString(lv.Size) {
					v.errorf(sp, "size %q: a percentage must look like 100%%FREE, 50%%VG or 100%%", lv.Size)
				}
			case !lvmSizeRE.MatchString(lv.Size):
				v.errorf(sp, "size %q is not an LVM size (like 512M, 10G, 1.5T)", lv.Size)
			}
			switch lv.LVMType {
			case "", "mirror", "raid0", "raid1", "raid4", "raid5", "raid6", "thin-pool":
			case "thinlv":
				pool := vg.LVs[lv.Pool]
				if pool == nil {
					for _, o := range vg.LVs {
						if o.Name == lv.Pool {
							pool = o
						}
					}
				}
				if pool == nil || pool.LVMType != "thin-pool" {
					v.errorf(config.Key(lv.Path, "pool"), "thin volume %q needs pool: the name of a thin-pool LV in %s", lk, vg.Name)
				}
			default:
				v.errorf(config.Key(lv.Path, "lvm_type"), "lvm_type %q: use one of mirror, raid0, raid1, raid4, raid5, raid6, thin-pool, thinlv", lv.LVMType)
			}
			if lv.Content != nil {
				if _, isTable := lv.Content.(*GPT); isTable {
					v.errorf(lv.Path, "a logical volume cannot hold a partition table")
				}
			}
			v.content(lv.Content, lv.Path)
		}
	}
	for _, k := range sortedKeys(l.Zpools) {
		z := l.Zpools[k]
		v.need("zpool", z.Path)
		v.need("zfs", z.Path)
		if h != nil && h.HasTool != nil && h.HasTool("zpool") {
			v.errorf(z.Path, "not supported by nivis yet: zpool %q (ZFS pools and datasets); create it by hand after format, or use btrfs", k)
		}
		if len(members[DeviceRef{"zpool", k}]) == 0 {
			if _, hasMode := z.Raw["mode"].(map[string]any); !hasMode {
				v.errorf(z.Path, "zpool %q has no members: no content of type zfs names it", k)
			}
		}
		v.zfsMountpoints(z)
	}
	for _, k := range sortedKeys(l.Nodevs) {
		n := l.Nodevs[k]
		v.hooks(n.Path, n.Hooks)
		v.mountpoint(config.Key(n.Path, "mountpoint"), n.Mountpoint)
		if n.FSType != "" && n.Mountpoint != "" && v.h != nil && v.h.CanMount != nil && m.Mount && !v.h.CanMount(n.FSType) {
			v.errorf(config.Key(n.Path, "fsType"), "not supported on this host: the kernel cannot mount %s", n.FSType)
		}
	}
	v.hostTools()
}

func (v *validator) hooks(p string, h Hooks) {
	if h.PreCreate+h.PostCreate+h.PreMount+h.PostMount+h.PreUnmount+h.PostUnmount != "" {
		v.need("sh", p)
	}
}

func (v *validator) mountpoint(p, mp string) {
	if mp == "" {
		return
	}
	if !strings.HasPrefix(mp, "/") {
		v.errorf(p, "mountpoint %q must be an absolute path", mp)
		return
	}
	clean := path.Clean(mp)
	if other, dup := v.seen[clean]; dup {
		v.errorf(p, "mountpoint %s is also used by %s", clean, other)
		return
	}
	v.seen[clean] = p
}

func (v *validator) content(c Content, parentPath string) {
	if c == nil {
		return
	}
	p, dev := c.Where()
	v.hooks(p, *c.hooks())
	if dev == "" {
		v.errorf(config.Key(p, "device"), "no device: set device on the parent")
	}
	switch x := c.(type) {
	case *GPT:
		v.gpt(x)
	case *Table:
		switch x.Format {
		case "gpt", "msdos":
		default:
			v.errorf(config.Key(p, "format"), "format %q: use gpt or msdos", x.Format)
		}
		v.need("parted", p)
		for _, tp := range x.Partitions {
			switch tp.PartType {
			case "primary", "logical", "extended":
			default:
				v.errorf(config.Key(tp.Path, "part-type"), "part-type %q: use primary, logical or extended", tp.PartType)
			}
			v.content(tp.Content, tp.Path)
		}
	case *Filesystem:
		if x.Format != "" {
			v.need("mkfs."+x.Format, p)
			if x.Mountpoint != "" && v.m.Mount && v.h != nil && v.h.CanMount != nil && !v.h.CanMount(x.Format) {
				v.errorf(config.Key(p, "format"), "not supported on this host: the kernel cannot mount %s (map it to another format or skip its mountpoint)", x.Format)
			}
		}
		v.mountpoint(config.Key(p, "mountpoint"), x.Mountpoint)
	case *Btrfs:
		v.need("mkfs.btrfs", p)
		if len(x.Subvolumes) > 0 || len(x.Swap) > 0 {
			v.need("btrfs", p)
		}
		if x.Mountpoint != "" && v.m.Mount && v.h != nil && v.h.CanMount != nil && !v.h.CanMount("btrfs") {
			v.errorf(p, "not supported on this host: the kernel cannot mount btrfs")
		}
		v.mountpoint(config.Key(p, "mountpoint"), x.Mountpoint)
		v.swapFiles(x.Swap)
		names := map[string]string{}
		for _, s := range x.SortedSubvolumes() {
			v.hooks(s.Path, s.Hooks)
			n := strings.Trim(path.Clean("/"+s.Name), "/")
			if n == "" || n == "." {
				v.errorf(config.Key(s.Path, "name"), "subvolume name %q is empty", s.Name)
			}
			if other, dup := names[n]; dup {
				v.errorf(s.Path, "subvolume %s is also defined by %s", n, other)
			}
			names[n] = s.Path
			v.mountpoint(config.Key(s.Path, "mountpoint"), s.Mountpoint)
			v.swapFiles(s.Swap)
		}
	case *Swap:
		v.need("mkswap", p)
		v.discard(config.Key(p, "discardPolicy"), x.DiscardPolicy)
		if x.Priority != nil && (*x.Priority < 0 || *x.Priority > 32767) {
			v.errorf(config.Key(p, "priority"), "priority %d: use 0..32767", *x.Priority)
		}
		if x.RandomEncryption && x.ResumeDevice {
			v.errorf(p, "a randomly encrypted swap cannot be the resume device")
		}
	case *LUKS:
		v.need("cryptsetup", p)
		if other, dup := v.luksNames[x.Name]; dup && x.Name != "" {
			v.errorf(config.Key(p, "name"), "luks name %q is also used by %s", x.Name, other)
		}
		v.luksNames[x.Name] = p
		for _, f := range append([]string{x.PasswordFile, x.KeyFile, x.SettingsKeyFile()}, x.AdditionalKeyFiles...) {
			if f != "" && !strings.HasPrefix(f, "/") {
				v.errorf(p, "key file %q must be an absolute path", f)
			}
		}
		if x.Content != nil {
			if _, ok := x.Content.(*Table); ok {
				v.errorf(p, "a legacy table inside luks is not supported; use gpt")
			}
		}
		v.content(x.Content, p)
	case *LVMPV:
		v.need("lvm", p)
		if _, ok := v.l.memberOf(x); !ok && x.VG != "" {
			v.errorf(config.Key(p, "vg"), "volume group %q does not exist in lvm_vg", x.VG)
		}
	case *MDRaid:
		v.need("mdadm", p)
		if _, ok := v.l.memberOf(x); !ok && x.Name != "" {
			v.errorf(config.Key(p, "name"), "mdadm array %q does not exist in mdadm", x.Name)
		}
	case *ZFS:
		v.need("zpool", p)
		if _, ok := v.l.memberOf(x); !ok && x.Pool != "" {
			v.errorf(config.Key(p, "pool"), "zpool %q does not exist in zpool", x.Pool)
		}
	case *BcachefsMember:
		v.need("bcachefs", p)
		if v.h != nil && v.h.HasTool != nil && v.h.HasTool("bcachefs") {
			v.errorf(p, "not supported by nivis yet: multi-device bcachefs; use a filesystem with format = \"bcachefs\" for one device")
		}
	}
}

func (v *validator) discard(p, d string) {
	switch d {
	case "", "once", "pages", "both":
	default:
		v.errorf(p, "discardPolicy %q: use once, pages or both", d)
	}
}

func (v *validator) swapFiles(m map[string]*SwapFile) {
	for _, k := range sortedKeys(m) {
		s := m[k]
		if !swapFileSizeRE.MatchString(s.Size) {
			v.errorf(config.Key(s.Path, "size"), "swap file size %q: use a number with K, M, G, T or P (like 2G)", s.Size)
		}
		v.discard(config.Key(s.Path, "discardPolicy"), s.DiscardPolicy)
	}
}

func (v *validator) gpt(g *GPT) {
	hundred := ""
	for _, pt := range g.Sorted {
		if _, ok := TypeGUID(pt.Type); !ok {
			v.errorf(config.Key(pt.Path, "type"), "unknown partition type %q: use an sgdisk code (EF00, EF02, 8300, 8200, 8E00, FD00, ...) or a type GUID", pt.Type)
		}
		if !partSizeRE.MatchString(pt.Size) {
			v.errorf(config.Key(pt.Path, "size"), "size %q: use \"100%%\" or a number with an optional K, M, G, T or P (like 512M)", pt.Size)
		}
		if pt.Size == "100%" {
			if hundred != "" {
				v.errorf(config.Key(pt.Path, "size"), "two partitions take \"100%%\" of the same disk (also %s): only one can have the rest", hundred)
			}
			hundred = pt.Path
		}
		if _, err := parsePosition(pt.Start); err != nil {
			v.errorf(config.Key(pt.Path, "start"), "start: %v", err)
		}
		if _, err := parsePosition(pt.End); err != nil && pt.End != "+"+pt.Size {
			v.errorf(config.Key(pt.Path, "end"), "end: %v", err)
		}
		if pt.Alignment < 0 {
			v.errorf(config.Key(pt.Path, "alignment"), "alignment must not be negative")
		}
		if n := len(utf16.Encode([]rune(pt.Label))); n > 36 {
			v.errorf(config.Key(pt.Path, "label"), "label %q is %d UTF-16 units long; GPT names hold at most 36", pt.Label, n)
		}
		if strings.ContainsRune(pt.Label, 0) {
			v.errorf(config.Key(pt.Path, "label"), "label must not contain NUL")
		}
		if other, dup := v.labels[pt.Label]; dup && pt.DefaultDevice && pt.UUID == "" {
			v.warnf(config.Key(pt.Path, "label"), "label %q is also used by %s: /dev/disk/by-partlabel/%s would be ambiguous", pt.Label, other, pt.Label)
		}
		v.labels[pt.Label] = pt.Path
		if pt.UUID != "" {
			if !uuidRE.MatchString(pt.UUID) {
				v.errorf(config.Key(pt.Path, "uuid"), "uuid %q is not a UUID", pt.UUID)
			}
			if other, dup := v.partUUIDs[strings.ToLower(pt.UUID)]; dup {
				v.errorf(config.Key(pt.Path, "uuid"), "partition uuid %s is also used by %s", pt.UUID, other)
			}
			v.partUUIDs[strings.ToLower(pt.UUID)] = pt.Path
		}
		for i, a := range pt.Attributes {
			if a < 0 || a > 63 {
				v.errorf(config.Index(config.Key(pt.Path, "attributes"), i), "attribute bit %d: GPT attributes are bits 0..63", a)
			}
		}
		if pt.Hybrid != nil {
			v.need("sgdisk", pt.Path)
			if pt.Hybrid.MBRPartitionType != "" || pt.Hybrid.MBRBootableFlag {
				v.need("sfdisk", pt.Path)
			}
		}
		if pt.Content != nil {
			if _, ok := pt.Content.(*GPT); ok {
				v.errorf(pt.Path, "a partition cannot hold a partition table")
			}
		}
		v.content(pt.Content, pt.Path)
	}
}

func (v *validator) zfsMountpoints(z *Zpool) {
	if z.Mountpoint != "" {
		v.mountpoint(config.Key(z.Path, "mountpoint"), z.Mountpoint)
	}
	ds, _ := z.Raw["datasets"].(map[string]any)
	keys := make([]string, 0, len(ds))
	for k := range ds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, _ := ds[k].(map[string]any)
		if mp, _ := d["mountpoint"].(string); mp != "" {
			v.mountpoint(config.Key(config.Key(config.Key(z.Path, "datasets"), k), "mountpoint"), mp)
		}
	}
}

// hostTools reports what the host lacks, once per tool at the first place
// that needs it.
func (v *validator) hostTools() {
	if v.h == nil || v.h.HasTool == nil || !(v.m.Format || v.m.Destroy || v.m.Mount) {
		return
	}
	needed := func(tool string) bool {
		switch {
		case tool == "wipefs":
			return v.m.Destroy
		case tool == "lvm", tool == "cryptsetup", tool == "mdadm", tool == "zpool", tool == "zfs", tool == "sh":
			return true // also needed to open, activate or mount
		}
		return v.m.Format
	}
	for _, tool := range sortedKeys(v.needs) {
		if !needed(tool) || v.h.HasTool(tool) {
			continue
		}
		paths := v.needs[tool]
		v.errorf(paths[0], "not supported on this host: needs %s%s", tool, toolHint(tool))
	}
}

func toolHint(tool string) string {
	switch tool {
	case "mkfs.ext2", "mkfs.ext3", "mkfs.ext4":
		return " (package e2fsprogs)"
	case "mkfs.vfat", "mkfs.fat":
		return " (package dosfstools)"
	case "mkfs.xfs":
		return " (package xfsprogs)"
	case "mkfs.btrfs", "btrfs":
		return " (package btrfs-progs)"
	case "mkfs.f2fs":
		return " (package f2fs-tools)"
	case "lvm":
		return " (package lvm2)"
	case "zpool", "zfs":
		return " (ZFS userland and kernel module)"
	case "parted":
		return " (package parted; legacy table type)"
	case "sgdisk":
		return " (package gdisk, for hybrid MBRs)"
	case "wipefs", "mkswap", "sfdisk":
		return " (package util-linux/fdisk)"
	}
	return ""
}
