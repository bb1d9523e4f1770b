package disko

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nivis/nivis/internal/config"
)

// Parse reads a disko.devices tree from node. basePath is the report path
// of node ("$" or "$.disko"); every problem goes to r with its path and
// line, and pos learns where each value is. It returns nil only when node
// is not a map at all.
func Parse(node *yaml.Node, basePath string, r *config.Report, pos config.Positions) *Layout {
	if pos == nil {
		pos = config.Positions{}
	}
	p := &parser{r: r, pos: pos}
	if node != nil && node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node == nil || node.Kind == 0 {
		r.Add(config.SevError, basePath, config.Pos{}, "missing disko devices: expected a map with disk, mdadm, lvm_vg, zpool or nodev")
		return nil
	}
	o := p.object(node, basePath)
	if o == nil {
		if !config.IsNull(node) {
			return nil
		}
		o = config.EmptyMap(basePath, r, pos)
	}
	l := &Layout{
		Disks:  map[string]*Disk{},
		MDADM:  map[string]*MDADM{},
		LVMVGs: map[string]*LVMVG{},
		Zpools: map[string]*Zpool{},
		Nodevs: map[string]*Nodev{},
		Path:   basePath,
		Pos:    pos,
	}
	o.Each("disk", func(key string, n *yaml.Node, path string) { l.Disks[key] = p.disk(key, n, path) })
	o.Each("mdadm", func(key string, n *yaml.Node, path string) { l.MDADM[key] = p.mdadm(key, n, path) })
	o.Each("lvm_vg", func(key string, n *yaml.Node, path string) { l.LVMVGs[key] = p.lvmVG(key, n, path) })
	o.Each("zpool", func(key string, n *yaml.Node, path string) { l.Zpools[key] = p.zpool(key, n, path) })
	o.Each("nodev", func(key string, n *yaml.Node, path string) { l.Nodevs[key] = p.nodev(key, n, path) })
	// Newer disko has more top-level sets; empty ones are harmless.
	for _, k := range []string{"bcachefs_filesystems", "bcache", "verity"} {
		if n := o.Get(k); n != nil && !config.IsNull(n) && !(n.Kind == yaml.MappingNode && len(n.Content) == 0) {
			p.errorf(config.Key(basePath, k), n, "not supported by nivis: %s devices", k)
		}
	}
	o.Finish(internalKey)
	dropNil(l.Disks)
	dropNil(l.MDADM)
	dropNil(l.LVMVGs)
	dropNil(l.Zpools)
	dropNil(l.Nodevs)
	return l
}

// dropNil removes the entries that failed to parse (reported already).
func dropNil[T any](m map[string]*T) {
	maps.DeleteFunc(m, func(_ string, v *T) bool { return v == nil })
}

// ParseFile reads a layout from a file holding either disko's devices
// JSON (what `nix eval --json .#nixosConfigurations.X.config.disko.devices`
// prints) or a nivis config (YAML or JSON) with a `disko:` section. The
// error is non-nil when the file cannot be read or the report has errors.
func ParseFile(path string) (*Layout, config.Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, config.Report{}, fmt.Errorf("read disko layout: %w", err)
	}
	l, r := ParseBytes(raw)
	r.Sort()
	return l, r, r.Err()
}

// ParseBytes is ParseFile on bytes already read.
func ParseBytes(raw []byte) (*Layout, config.Report) {
	n, path, r := findDevices(raw)
	if n == nil {
		return nil, r
	}
	return Parse(n, path, &r, config.Positions{}), r
}

// devicesNode returns the disko devices tree of a file's bytes.
func devicesNode(raw []byte) (*yaml.Node, config.Report) {
	n, _, r := findDevices(raw)
	return n, r
}

// findDevices locates disko.devices in a bare devices JSON or YAML, a
// {"disko": {"devices": ...}} value, or a nivis config with disko:.
func findDevices(raw []byte) (*yaml.Node, string, config.Report) {
	root, r := config.ReadDocument(raw, "the file is empty; expected disko devices or a nivis config with disko:")
	if root == nil {
		return nil, "", r
	}
	get := config.Lookup
	if av := get(root, "apiVersion"); av != nil || get(root, "kind") != nil {
		// A nivis config: any kind may carry a disko section (Disko, Host).
		if av == nil || av.Value != config.APIVersion {
			r.Add(config.SevError, "$.apiVersion", config.PosOf(root), "unsupported or missing apiVersion; this nivis reads %s", config.APIVersion)
		}
		d := get(root, "disko")
		if d == nil {
			r.Add(config.SevError, "$.disko", config.PosOf(root), "this config has no disko: section")
			return nil, "", r
		}
		return d, "$.disko", r
	}
	if d := get(root, "disko"); d != nil && d.Kind == yaml.MappingNode {
		if dev := get(d, "devices"); dev != nil {
			return dev, "$.disko.devices", r
		}
		return d, "$.disko", r
	}
	if dev := get(root, "devices"); dev != nil && len(root.Content) == 2 {
		return dev, "$.devices", r
	}
	return root, "$", r
}

type parser struct {
	r   *config.Report
	pos config.Positions
}

func (p *parser) errorf(path string, n *yaml.Node, format string, args ...any) {
	p.r.AddNode(config.SevError, path, n, p.pos, format, args...)
}

func (p *parser) warnf(path string, n *yaml.Node, format string, args ...any) {
	p.r.AddNode(config.SevWarning, path, n, p.pos, format, args...)
}

func (p *parser) object(n *yaml.Node, path string) *config.Map {
	return config.ReadMap(n, path, p.r, p.pos)
}

func hooks(o *config.Map) Hooks {
	return Hooks{
		PreCreate:   o.Str("preCreateHook", ""),
		PostCreate:  o.Str("postCreateHook", ""),
		PreMount:    o.Str("preMountHook", ""),
		PostMount:   o.Str("postMountHook", ""),
		PreUnmount:  o.Str("preUnmountHook", ""),
		PostUnmount: o.Str("postUnmountHook", ""),
	}
}

// internalKey accepts disko's internal options (leading underscore)
// silently: they appear in evaluated JSON.
func internalKey(k string) bool { return strings.HasPrefix(k, "_") }

func (p *parser) disk(key string, n *yaml.Node, path string) *Disk {
	o := p.object(n, path)
	if o == nil {
		if config.IsNull(n) {
			p.errorf(path, n, "disk %q is null", key)
		}
		return nil
	}
	o.CheckType("disk")
	d := &Disk{
		Key:       key,
		Name:      o.Str("name", strings.ReplaceAll(key, "/", "_")),
		Device:    o.Str("device", ""),
		Destroy:   o.Bool("destroy", true),
		ImageSize: o.Str("imageSize", "2G"),
		Path:      path,
		Hooks:     hooks(o),
	}
	o.Str("imageName", "")
	if d.Device == "" {
		p.errorf(o.KeyPath("device"), nil, "disk %q needs a device (like /dev/sda or /dev/disk/by-id/...)", key)
	}
	d.Content = p.content(o, "content", d.Device, parentRef{kind: "disk", name: d.Name}, true)
	o.Finish(internalKey)
	return d
}

func (p *parser) mdadm(key string, n *yaml.Node, path string) *MDADM {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.CheckType("mdadm")
	m := &MDADM{Key: key, Name: o.Str("name", key), Metadata: o.Str("metadata", "default"), Path: path, Hooks: hooks(o)}
	m.Level, _ = o.Int("level", 1)
	m.Content = p.content(o, "content", m.Device(), parentRef{kind: "mdadm", name: m.Name}, true)
	o.Finish(internalKey)
	return m
}

func (p *parser) lvmVG(key string, n *yaml.Node, path string) *LVMVG {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.CheckType("lvm_vg")
	v := &LVMVG{Key: key, Name: o.Str("name", key), LVs: map[string]*LV{}, Path: path, Hooks: hooks(o)}
	o.Each("lvs", func(lk string, ln *yaml.Node, lpath string) {
		lo := p.object(ln, lpath)
		if lo == nil {
			return
		}
		lv := &LV{Key: lk, Name: lo.Str("name", lk), Size: lo.Str("size", ""), LVMType: lo.Str("lvm_type", ""),
			ExtraArgs: lo.Strs("extraArgs"), Pool: lo.Str("pool", ""), Path: lpath}
		prio := 1000
		if lv.LVMType == "thin-pool" {
			prio = 501
		}
		if strings.Contains(lv.Size, "100%") {
			prio += 251
		}
		lv.Priority, _ = lo.Int("priority", prio)
		lv.Device = "/dev/" + v.Name + "/" + lv.Name
		lv.Content = p.content(lo, "content", lv.Device, parentRef{kind: "lvm_vg", name: v.Name}, false)
		lo.Finish(internalKey)
		v.LVs[lk] = lv
	})
	o.Finish(internalKey)
	return v
}

func (p *parser) zpool(key string, n *yaml.Node, path string) *Zpool {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	z := &Zpool{Key: key, Name: o.Str("name", key), Mountpoint: o.Str("mountpoint", ""), Path: path, Hooks: hooks(o)}
	_ = n.Decode(&z.Raw)
	o.UseAll() // zpool options are passed through to zpool/zfs as written
	return z
}

func (p *parser) nodev(key string, n *yaml.Node, path string) *Nodev {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.CheckType("nodev")
	d := &Nodev{Key: key, FSType: o.Str("fsType", ""), Device: o.Str("device", "none"),
		Mountpoint: o.Str("mountpoint", key), Path: path, Hooks: hooks(o)}
	d.MountOptions = mountOptions(o)
	if d.FSType == "" {
		p.errorf(o.KeyPath("fsType"), nil, "nodev %q needs fsType (like tmpfs)", key)
	}
	o.Finish(internalKey)
	return d
}

func mountOptions(o *config.Map) []string {
	if !o.Has("mountOptions") {
		o.Get("mountOptions")
		return []string{"defaults"}
	}
	return o.Strs("mountOptions")
}

// parentRef names what a content sits in, for disko's default labels.
type parentRef struct {
	kind, name string
}

var (
	partitionKinds = []string{"btrfs", "filesystem", "zfs", "mdraid", "luks", "lvm_pv", "swap", "bcachefs"}
	deviceKinds    = append([]string{"table", "gpt"}, partitionKinds...)
)

// content reads o[key] as a content sitting on device.
func (p *parser) content(o *config.Map, key, device string, parent parentRef, tables bool) Content {
	n := o.Get(key)
	if config.IsNull(n) {
		return nil
	}
	path := o.KeyPath(key)
	c := p.object(n, path)
	if c == nil {
		return nil
	}
	kinds := partitionKinds
	if tables {
		kinds = deviceKinds
	}
	t := c.Str("type", "")
	if t == "" {
		p.errorf(config.Key(path, "type"), n, "content needs a type: one of %s", strings.Join(kinds, ", "))
		return nil
	}
	allowed := false
	for _, k := range kinds {
		allowed = allowed || k == t
	}
	if !allowed {
		p.errorf(config.Key(path, "type"), c.Peek("type"), "unknown content type %q here; one of %s", t, strings.Join(kinds, ", "))
		return nil
	}
	nd := node{Path: path, Device: c.Str("device", device), Hooks: hooks(c)}
	var out Content
	switch t {
	case "gpt":
		out = p.gpt(c, nd, parent)
	case "table":
		out = p.table(c, nd)
	case "filesystem":
		f := &Filesystem{node: nd, Format: c.Str("format", ""), ExtraArgs: c.Strs("extraArgs"), Mountpoint: c.Str("mountpoint", "")}
		f.MountOptions = mountOptions(c)
		if f.Format == "" {
			p.errorf(config.Key(path, "format"), nil, "filesystem needs a format (like ext4, xfs, vfat)")
		}
		out = f
	case "btrfs":
		out = p.btrfs(c, nd)
	case "swap":
		s := &Swap{node: nd, ExtraArgs: c.Strs("extraArgs"), DiscardPolicy: c.Str("discardPolicy", ""),
			Priority: c.IntPtr("priority"), RandomEncryption: c.Bool("randomEncryption", false),
			ResumeDevice: c.Bool("resumeDevice", false)}
		s.MountOptions = mountOptions(c)
		out = s
	case "luks":
		l := &LUKS{node: nd, Name: c.Str("name", ""), KeyFile: c.Str("keyFile", ""), PasswordFile: c.Str("passwordFile", ""),
			Settings: c.AnyMap("settings"), AdditionalKeyFiles: c.Strs("additionalKeyFiles"),
			InitrdUnlock: c.Bool("initrdUnlock", true), ExtraFormatArgs: c.Strs("extraFormatArgs"), ExtraOpenArgs: c.Strs("extraOpenArgs")}
		l.AskPassword = c.Bool("askPassword", l.KeyFile == "" && l.PasswordFile == "" && l.SettingsKeyFile() == "")
		if l.Name == "" {
			p.errorf(config.Key(path, "name"), nil, "luks needs a name (it opens at /dev/mapper/<name>)")
		}
		l.Content = p.content(c, "content", l.MapperDevice(), parentRef{kind: "luks", name: l.Name}, true)
		out = l
	case "lvm_pv":
		v := &LVMPV{node: nd, VG: c.Str("vg", "")}
		if v.VG == "" {
			p.errorf(config.Key(path, "vg"), nil, "lvm_pv needs vg: the volume group it belongs to")
		}
		out = v
	case "mdraid":
		m := &MDRaid{node: nd, Name: c.Str("name", "")}
		if m.Name == "" {
			p.errorf(config.Key(path, "name"), nil, "mdraid needs name: the mdadm array it belongs to")
		}
		out = m
	case "zfs":
		z := &ZFS{node: nd, Pool: c.Str("pool", "")}
		if z.Pool == "" {
			p.errorf(config.Key(path, "pool"), nil, "zfs needs pool: the zpool it belongs to")
		}
		out = z
	case "bcachefs":
		b := &BcachefsMember{node: nd, Filesystem: c.Str("filesystem", ""), Label: c.Str("label", "")}
		c.Strs("extraFormatArgs")
		out = b
	}
	c.Finish(internalKey)
	return out
}

func (p *parser) gpt(c *config.Map, nd node, parent parentRef) *GPT {
	g := &GPT{node: nd, Partitions: map[string]*Partition{}, EfiGptPartitionFirst: c.Bool("efiGptPartitionFirst", true),
		ParentType: parent.kind, ParentName: parent.name}
	type pending struct {
		part *Partition
		o    *config.Map
	}
	var parts []pending
	c.Each("partitions", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			return
		}
		pt := &Partition{Key: key, Path: path}
		pt.Name = o.Str("name", key)
		pt.Size = o.Str("size", "0")
		contentType := ""
		if cn := o.Peek("content"); cn != nil && cn.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(cn.Content); i += 2 {
				if cn.Content[i].Value == "type" {
					contentType = cn.Content[i+1].Value
				}
			}
		}
		defType := "8300"
		if contentType == "swap" {
			defType = "8200"
		}
		pt.Type = o.Str("type", defType)
		prio := 1000
		switch {
		case pt.Size == "100%":
			prio = 9001
		case pt.Type == "EF02":
			prio = 100
		}
		pt.Priority, _ = o.Int("priority", prio)
		label := parent.kind + "-" + parent.name + "-" + pt.Name
		if len(label) > 36 {
			sum := sha256.Sum256([]byte(label))
			label = hex.EncodeToString(sum[:])[:36]
		}
		pt.Label = o.Str("label", label)
		pt.Start = o.Str("start", "0")
		end := "+" + pt.Size
		if pt.Size == "100%" {
			end = "-0"
		}
		pt.End = o.Str("end", end)
		align := 0
		if strings.HasSuffix(pt.Start, "s") || strings.HasSuffix(pt.End, "s") {
			align = 1
		}
		pt.Alignment, _ = o.Int("alignment", align)
		pt.UUID = o.Str("uuid", "")
		pt.Attributes = o.Ints("attributes")
		if h := o.Get("hybrid"); !config.IsNull(h) {
			if ho := p.object(h, o.KeyPath("hybrid")); ho != nil {
				pt.Hybrid = &Hybrid{MBRPartitionType: ho.Str("mbrPartitionType", ""), MBRBootableFlag: ho.Bool("mbrBootableFlag", false)}
				hooks(ho)
				ho.Finish(internalKey)
			}
		}
		pt.TypeGUID, _ = TypeGUID(pt.Type)
		g.Partitions[key] = pt
		parts = append(parts, pending{pt, o})
	})
	g.Sorted = make([]*Partition, 0, len(g.Partitions))
	for _, k := range sortedKeys(g.Partitions) {
		g.Sorted = append(g.Sorted, g.Partitions[k])
	}
	stableSort(g.Sorted, func(a, b *Partition) bool { return a.Priority < b.Priority })
	for i, pt := range g.Sorted {
		pt.Index = i + 1
	}
	for _, pp := range parts {
		pt, o := pp.part, pp.o
		def := ""
		switch {
		case pt.UUID != "":
			def = "/dev/disk/by-partuuid/" + pt.UUID
		case parent.kind == "mdadm":
			def = fmt.Sprintf("/dev/disk/by-id/md-name-any:%s-part%d", parent.name, pt.Index)
		default:
			def = "/dev/disk/by-partlabel/" + hexEscapeUdev(pt.Label)
		}
		pt.Device = o.Str("device", def)
		pt.DefaultDevice = pt.Device == def
		pt.Content = p.content(o, "content", pt.Device, parentRef{kind: "partition", name: pt.Name}, false)
		o.Finish(internalKey)
	}
	return g
}

func (p *parser) table(c *config.Map, nd node) *Table {
	t := &Table{node: nd, Format: c.Str("format", "gpt")}
	n := c.Get("partitions")
	if config.IsNull(n) {
		return t
	}
	path := c.KeyPath("partitions")
	if n.Kind != yaml.SequenceNode {
		p.errorf(path, n, "expected a list of partitions, found %s", config.Describe(n))
		return t
	}
	for i, pn := range n.Content {
		ppath := config.Index(path, i)
		o := p.object(pn, ppath)
		if o == nil {
			continue
		}
		tp := &TablePartition{PartType: o.Str("part-type", "primary"), FsType: o.Str("fs-type", ""), Name: o.Str("name", ""),
			Start: o.Str("start", "0%"), End: o.Str("end", "100%"), Flags: o.Strs("flags"), Bootable: o.Bool("bootable", false),
			Index: i + 1, Path: ppath}
		tp.Device = o.Str("device", deviceNumbering(t.Device, tp.Index))
		tp.Content = p.content(o, "content", tp.Device, parentRef{kind: "partition", name: tp.Name}, false)
		o.Finish(internalKey)
		t.Partitions = append(t.Partitions, tp)
	}
	return t
}

func (p *parser) btrfs(c *config.Map, nd node) *Btrfs {
	b := &Btrfs{node: nd, ExtraArgs: c.Strs("extraArgs"), Mountpoint: c.Str("mountpoint", ""), Subvolumes: map[string]*Subvolume{}}
	b.MountOptions = mountOptions(c)
	b.Swap = p.swapFiles(c, b.Mountpoint)
	c.Each("subvolumes", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			b.Subvolumes[key] = &Subvolume{Key: key, Name: key, MountOptions: []string{"defaults"}, Path: path}
			return
		}
		if t := o.Str("type", "btrfs_subvol"); t != "btrfs_subvol" {
			p.errorf(o.KeyPath("type"), o.Peek("type"), "type must be \"btrfs_subvol\" here, found %q", t)
		}
		s := &Subvolume{Key: key, Name: o.Str("name", key), ExtraArgs: o.Strs("extraArgs"), Mountpoint: o.Str("mountpoint", ""), Path: path, Hooks: hooks(o)}
		s.MountOptions = mountOptions(o)
		if s.Mountpoint == "" && o.Has("mountOptions") && !(len(s.MountOptions) == 1 && s.MountOptions[0] == "defaults") {
			p.warnf(o.KeyPath("mountOptions"), nil, "subvolume %s has mountOptions but no mountpoint: they are not used", s.Name)
		}
		base := s.Mountpoint
		if base == "" && b.Mountpoint != "" {
			base = strings.TrimSuffix(b.Mountpoint, "/") + "/" + strings.TrimPrefix(s.Name, "/")
		}
		s.Swap = p.swapFiles(o, base)
		o.Finish(internalKey)
		b.Subvolumes[key] = s
	})
	return b
}

func (p *parser) swapFiles(c *config.Map, base string) map[string]*SwapFile {
	out := map[string]*SwapFile{}
	c.Each("swap", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			return
		}
		if t := o.Str("type", "btrfs_swap"); t != "btrfs_swap" {
			p.errorf(o.KeyPath("type"), o.Peek("type"), "type must be \"btrfs_swap\" here, found %q", t)
		}
		s := &SwapFile{Key: key, Size: o.Str("size", ""), FilePath: o.Str("path", key), Priority: o.IntPtr("priority"),
			DiscardPolicy: o.Str("discardPolicy", ""), Path: path}
		if o.Has("options") {
			s.Options = o.Strs("options")
		} else {
			o.Get("options")
			s.Options = []string{"defaults"}
		}
		o.Str("mountpoint", "") // internal in disko: always derived
		if base != "" {
			s.Mountpoint = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(s.FilePath, "/")
		}
		hooks(o)
		o.Finish(internalKey)
		out[key] = s
	})
	return out
}

// hexEscapeUdev escapes a label the way udev names its by-partlabel links
// (and disko's hexEscapeUdevSymlink): \xNN for anything outside
// [0-9A-Za-z#+-.:=@_/], the "+-." being a range that includes ','.
func hexEscapeUdev(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z',
			c == '#', c >= '+' && c <= '.', c == ':', c == '=', c == '@', c == '_', c == '/':
			b.WriteByte(c)
		case c >= 0x80:
			b.WriteByte(c) // valid UTF-8 passes through
		default:
			fmt.Fprintf(&b, "\\x%x", c)
		}
	}
	return b.String()
}

// UnescapeUdev reverses hexEscapeUdev.
func UnescapeUdev(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// deviceNumbering is disko's name for partition N of a legacy table.
func deviceNumbering(dev string, index int) string {
	n := strconv.Itoa(index)
	switch {
	case strings.HasPrefix(dev, "/dev/disk/") || strings.HasPrefix(dev, "/dev/zvol/"):
		return dev + "-part" + n
	case strings.HasPrefix(dev, "/dev/nvme") || strings.HasPrefix(dev, "/dev/mmcblk") || strings.HasPrefix(dev, "/dev/loop"):
		return dev + "p" + n
	case strings.HasPrefix(dev, "/dev/md/"):
		if last := dev[len(dev)-1]; last >= '0' && last <= '9' {
			return dev + "p" + n
		}
		return dev + n
	}
	return filepath.Clean(dev) + n
}
