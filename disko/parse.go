package disko

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
		if !isNull(node) {
			return nil
		}
		o = &obj{p: p, path: basePath, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, used: map[string]bool{}}
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
	o.eachEntry("disk", func(key string, n *yaml.Node, path string) { l.Disks[key] = p.disk(key, n, path) })
	o.eachEntry("mdadm", func(key string, n *yaml.Node, path string) { l.MDADM[key] = p.mdadm(key, n, path) })
	o.eachEntry("lvm_vg", func(key string, n *yaml.Node, path string) { l.LVMVGs[key] = p.lvmVG(key, n, path) })
	o.eachEntry("zpool", func(key string, n *yaml.Node, path string) { l.Zpools[key] = p.zpool(key, n, path) })
	o.eachEntry("nodev", func(key string, n *yaml.Node, path string) { l.Nodevs[key] = p.nodev(key, n, path) })
	// Newer disko has more top-level sets; empty ones are harmless.
	for _, k := range []string{"bcachefs_filesystems", "bcache", "verity"} {
		if n := o.get(k); n != nil && !isNull(n) && !(n.Kind == yaml.MappingNode && len(n.Content) == 0) {
			p.errorf(config.Key(basePath, k), n, "not supported by nivis: %s devices", k)
		}
	}
	o.finish()
	for k, d := range l.Disks {
		if d == nil {
			delete(l.Disks, k)
		}
	}
	for k, d := range l.MDADM {
		if d == nil {
			delete(l.MDADM, k)
		}
	}
	for k, d := range l.LVMVGs {
		if d == nil {
			delete(l.LVMVGs, k)
		}
	}
	for k, d := range l.Zpools {
		if d == nil {
			delete(l.Zpools, k)
		}
	}
	for k, d := range l.Nodevs {
		if d == nil {
			delete(l.Nodevs, k)
		}
	}
	return l
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
	var r config.Report
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		r.Add(config.SevError, "$", config.Pos{}, "not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return nil, "", r
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		r.Add(config.SevError, "$", config.Pos{}, "the file is empty; expected disko devices or a nivis config with disko:")
		return nil, "", r
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		r.Add(config.SevError, "$", posOf(root), "expected a map at the top level")
		return nil, "", r
	}
	get := func(n *yaml.Node, k string) *yaml.Node {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				return n.Content[i+1]
			}
		}
		return nil
	}
	if av := get(root, "apiVersion"); av != nil || get(root, "kind") != nil {
		// A nivis config: any kind may carry a disko section (Disko, Host).
		if av == nil || av.Value != config.APIVersion {
			r.Add(config.SevError, "$.apiVersion", posOf(root), "unsupported or missing apiVersion; this nivis reads %s", config.APIVersion)
		}
		d := get(root, "disko")
		if d == nil {
			r.Add(config.SevError, "$.disko", posOf(root), "this config has no disko: section")
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

func posOf(n *yaml.Node) config.Pos { return config.Pos{Line: n.Line, Column: n.Column} }

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func (p *parser) errorf(path string, n *yaml.Node, format string, args ...any) {
	pos := p.pos.At(path)
	if n != nil {
		pos = posOf(n)
	}
	p.r.Add(config.SevError, path, pos, format, args...)
}

func (p *parser) warnf(path string, n *yaml.Node, format string, args ...any) {
	pos := p.pos.At(path)
	if n != nil {
		pos = posOf(n)
	}
	p.r.Add(config.SevWarning, path, pos, format, args...)
}

// obj is one map being read: values by key, and which keys were used so
// the rest can be reported.
type obj struct {
	p    *parser
	path string
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
	used map[string]bool
	// order keeps the source order for eachEntry.
	order []string
}

func (p *parser) object(n *yaml.Node, path string) *obj {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	p.pos[path] = posOf(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(path, n, "expected a map, found %s", describe(n))
		return nil
	}
	o := &obj{p: p, path: path, vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, used: map[string]bool{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		kp := config.Key(path, k.Value)
		if _, dup := o.vals[k.Value]; dup {
			p.errorf(kp, k, "duplicate key %q", k.Value)
			continue
		}
		o.vals[k.Value] = v
		o.keys[k.Value] = k
		o.order = append(o.order, k.Value)
		p.pos[kp] = posOf(v)
	}
	return o
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

func (o *obj) get(key string) *yaml.Node {
	o.used[key] = true
	return o.vals[key]
}

func (o *obj) has(key string) bool {
	n, ok := o.vals[key]
	return ok && !isNull(n)
}

func (o *obj) kp(key string) string { return config.Key(o.path, key) }

// str reads a string (numbers and booleans are taken as written).
func (o *obj) str(key, def string) string {
	n := o.get(key)
	if isNull(n) {
		return def
	}
	if n.Kind != yaml.ScalarNode {
		o.p.errorf(o.kp(key), n, "expected a string, found %s", describe(n))
		return def
	}
	return n.Value
}

func (o *obj) boolean(key string, def bool) bool {
	n := o.get(key)
	if isNull(n) {
		return def
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		o.p.errorf(o.kp(key), n, "expected true or false, found %s", describe(n))
		return def
	}
	return b
}

func (o *obj) integer(key string, def int) (int, bool) {
	n := o.get(key)
	if isNull(n) {
		return def, false
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		o.p.errorf(o.kp(key), n, "expected a whole number, found %s", describe(n))
		return def, false
	}
	return v, true
}

func (o *obj) intPtr(key string) *int {
	v, ok := o.integer(key, 0)
	if !ok {
		return nil
	}
	return &v
}

func (o *obj) strs(key string) []string {
	n := o.get(key)
	if isNull(n) {
		return nil
	}
	path := o.kp(key)
	if n.Kind != yaml.SequenceNode {
		o.p.errorf(path, n, "expected a list of strings, found %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		o.p.pos[config.Index(path, i)] = posOf(c)
		if c.Kind != yaml.ScalarNode || isNull(c) {
			o.p.errorf(config.Index(path, i), c, "expected a string, found %s", describe(c))
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

func (o *obj) ints(key string) []int {
	n := o.get(key)
	if isNull(n) {
		return nil
	}
	path := o.kp(key)
	if n.Kind != yaml.SequenceNode {
		o.p.errorf(path, n, "expected a list of numbers, found %s", describe(n))
		return nil
	}
	var out []int
	for i, c := range n.Content {
		v, err := strconv.Atoi(c.Value)
		if c.Kind != yaml.ScalarNode || err != nil {
			o.p.errorf(config.Index(path, i), c, "expected a whole number, found %s", describe(c))
			continue
		}
		out = append(out, v)
	}
	return out
}

func (o *obj) anyMap(key string) map[string]any {
	n := o.get(key)
	if isNull(n) {
		return nil
	}
	var m map[string]any
	if n.Kind != yaml.MappingNode || n.Decode(&m) != nil {
		o.p.errorf(o.kp(key), n, "expected a map, found %s", describe(n))
		return nil
	}
	return m
}

// eachEntry walks a map-of-objects value (disk, lvs, partitions...).
func (o *obj) eachEntry(key string, f func(name string, n *yaml.Node, path string)) {
	n := o.get(key)
	if isNull(n) {
		return
	}
	path := o.kp(key)
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		return // older disko defaults some of these to []
	}
	m := o.p.object(n, path)
	if m == nil {
		return
	}
	for _, k := range m.order {
		m.used[k] = true
		f(k, m.vals[k], config.Key(path, k))
	}
}

func (o *obj) hooks() Hooks {
	return Hooks{
		PreCreate:   o.str("preCreateHook", ""),
		PostCreate:  o.str("postCreateHook", ""),
		PreMount:    o.str("preMountHook", ""),
		PostMount:   o.str("postMountHook", ""),
		PreUnmount:  o.str("preUnmountHook", ""),
		PostUnmount: o.str("postUnmountHook", ""),
	}
}

// finish warns about keys nothing read. disko's internal options (leading
// underscore) appear in evaluated JSON and are accepted silently.
func (o *obj) finish() {
	for _, k := range o.order {
		if o.used[k] || strings.HasPrefix(k, "_") {
			continue
		}
		o.p.warnf(o.kp(k), o.keys[k], "unknown key %q (ignored)", k)
	}
}

// checkType verifies an optional `type` field of a fixed-type object.
func (o *obj) checkType(want string) {
	if t := o.str("type", want); t != want {
		o.p.errorf(o.kp("type"), o.vals["type"], "type must be %q here, found %q", want, t)
	}
}

func (p *parser) disk(key string, n *yaml.Node, path string) *Disk {
	o := p.object(n, path)
	if o == nil {
		if isNull(n) {
			p.errorf(path, n, "disk %q is null", key)
		}
		return nil
	}
	o.checkType("disk")
	d := &Disk{
		Key:       key,
		Name:      o.str("name", strings.ReplaceAll(key, "/", "_")),
		Device:    o.str("device", ""),
		Destroy:   o.boolean("destroy", true),
		ImageSize: o.str("imageSize", "2G"),
		Path:      path,
		Hooks:     o.hooks(),
	}
	o.str("imageName", "")
	if d.Device == "" {
		p.errorf(o.kp("device"), nil, "disk %q needs a device (like /dev/sda or /dev/disk/by-id/...)", key)
	}
	d.Content = p.content(o, "content", d.Device, parentRef{kind: "disk", name: d.Name}, true)
	o.finish()
	return d
}

func (p *parser) mdadm(key string, n *yaml.Node, path string) *MDADM {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.checkType("mdadm")
	m := &MDADM{Key: key, Name: o.str("name", key), Metadata: o.str("metadata", "default"), Path: path, Hooks: o.hooks()}
	m.Level, _ = o.integer("level", 1)
	m.Content = p.content(o, "content", m.Device(), parentRef{kind: "mdadm", name: m.Name}, true)
	o.finish()
	return m
}

func (p *parser) lvmVG(key string, n *yaml.Node, path string) *LVMVG {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.checkType("lvm_vg")
	v := &LVMVG{Key: key, Name: o.str("name", key), LVs: map[string]*LV{}, Path: path, Hooks: o.hooks()}
	o.eachEntry("lvs", func(lk string, ln *yaml.Node, lpath string) {
		lo := p.object(ln, lpath)
		if lo == nil {
			return
		}
		lv := &LV{Key: lk, Name: lo.str("name", lk), Size: lo.str("size", ""), LVMType: lo.str("lvm_type", ""),
			ExtraArgs: lo.strs("extraArgs"), Pool: lo.str("pool", ""), Path: lpath}
		prio := 1000
		if lv.LVMType == "thin-pool" {
			prio = 501
		}
		if strings.Contains(lv.Size, "100%") {
			prio += 251
		}
		lv.Priority, _ = lo.integer("priority", prio)
		lv.Device = "/dev/" + v.Name + "/" + lv.Name
		lv.Content = p.content(lo, "content", lv.Device, parentRef{kind: "lvm_vg", name: v.Name}, false)
		lo.finish()
		v.LVs[lk] = lv
	})
	o.finish()
	return v
}

func (p *parser) zpool(key string, n *yaml.Node, path string) *Zpool {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	z := &Zpool{Key: key, Name: o.str("name", key), Mountpoint: o.str("mountpoint", ""), Path: path, Hooks: o.hooks()}
	_ = n.Decode(&z.Raw)
	for k := range o.vals {
		o.used[k] = true // zpool options are passed through to zpool/zfs as written
	}
	return z
}

func (p *parser) nodev(key string, n *yaml.Node, path string) *Nodev {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.checkType("nodev")
	d := &Nodev{Key: key, FSType: o.str("fsType", ""), Device: o.str("device", "none"),
		Mountpoint: o.str("mountpoint", key), Path: path, Hooks: o.hooks()}
	d.MountOptions = mountOptions(o)
	if d.FSType == "" {
		p.errorf(o.kp("fsType"), nil, "nodev %q needs fsType (like tmpfs)", key)
	}
	o.finish()
	return d
}

func mountOptions(o *obj) []string {
	if !o.has("mountOptions") {
		o.get("mountOptions")
		return []string{"defaults"}
	}
	return o.strs("mountOptions")
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
func (p *parser) content(o *obj, key, device string, parent parentRef, tables bool) Content {
	n := o.get(key)
	if isNull(n) {
		return nil
	}
	path := o.kp(key)
	c := p.object(n, path)
	if c == nil {
		return nil
	}
	kinds := partitionKinds
	if tables {
		kinds = deviceKinds
	}
	t := c.str("type", "")
	if t == "" {
		p.errorf(config.Key(path, "type"), n, "content needs a type: one of %s", strings.Join(kinds, ", "))
		return nil
	}
	allowed := false
	for _, k := range kinds {
		allowed = allowed || k == t
	}
	if !allowed {
		p.errorf(config.Key(path, "type"), c.vals["type"], "unknown content type %q here; one of %s", t, strings.Join(kinds, ", "))
		return nil
	}
	nd := node{Path: path, Device: c.str("device", device), Hooks: c.hooks()}
	var out Content
	switch t {
	case "gpt":
		out = p.gpt(c, nd, parent)
	case "table":
		out = p.table(c, nd)
	case "filesystem":
		f := &Filesystem{node: nd, Format: c.str("format", ""), ExtraArgs: c.strs("extraArgs"), Mountpoint: c.str("mountpoint", "")}
		f.MountOptions = mountOptions(c)
		if f.Format == "" {
			p.errorf(config.Key(path, "format"), nil, "filesystem needs a format (like ext4, xfs, vfat)")
		}
		out = f
	case "btrfs":
		out = p.btrfs(c, nd)
	case "swap":
		s := &Swap{node: nd, ExtraArgs: c.strs("extraArgs"), DiscardPolicy: c.str("discardPolicy", ""),
			Priority: c.intPtr("priority"), RandomEncryption: c.boolean("randomEncryption", false),
			ResumeDevice: c.boolean("resumeDevice", false)}
		s.MountOptions = mountOptions(c)
		out = s
	case "luks":
		l := &LUKS{node: nd, Name: c.str("name", ""), KeyFile: c.str("keyFile", ""), PasswordFile: c.str("passwordFile", ""),
			Settings: c.anyMap("settings"), AdditionalKeyFiles: c.strs("additionalKeyFiles"),
			InitrdUnlock: c.boolean("initrdUnlock", true), ExtraFormatArgs: c.strs("extraFormatArgs"), ExtraOpenArgs: c.strs("extraOpenArgs")}
		l.AskPassword = c.boolean("askPassword", l.KeyFile == "" && l.PasswordFile == "" && l.SettingsKeyFile() == "")
		if l.Name == "" {
			p.errorf(config.Key(path, "name"), nil, "luks needs a name (it opens at /dev/mapper/<name>)")
		}
		l.Content = p.content(c, "content", l.MapperDevice(), parentRef{kind: "luks", name: l.Name}, true)
		out = l
	case "lvm_pv":
		v := &LVMPV{node: nd, VG: c.str("vg", "")}
		if v.VG == "" {
			p.errorf(config.Key(path, "vg"), nil, "lvm_pv needs vg: the volume group it belongs to")
		}
		out = v
	case "mdraid":
		m := &MDRaid{node: nd, Name: c.str("name", "")}
		if m.Name == "" {
			p.errorf(config.Key(path, "name"), nil, "mdraid needs name: the mdadm array it belongs to")
		}
		out = m
	case "zfs":
		z := &ZFS{node: nd, Pool: c.str("pool", "")}
		if z.Pool == "" {
			p.errorf(config.Key(path, "pool"), nil, "zfs needs pool: the zpool it belongs to")
		}
		out = z
	case "bcachefs":
		b := &BcachefsMember{node: nd, Filesystem: c.str("filesystem", ""), Label: c.str("label", "")}
		c.strs("extraFormatArgs")
		out = b
	}
	c.finish()
	return out
}

func (p *parser) gpt(c *obj, nd node, parent parentRef) *GPT {
	g := &GPT{node: nd, Partitions: map[string]*Partition{}, EfiGptPartitionFirst: c.boolean("efiGptPartitionFirst", true),
		ParentType: parent.kind, ParentName: parent.name}
	type pending struct {
		part *Partition
		o    *obj
	}
	var parts []pending
	c.eachEntry("partitions", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			return
		}
		pt := &Partition{Key: key, Path: path}
		pt.Name = o.str("name", key)
		pt.Size = o.str("size", "0")
		contentType := ""
		if cn := o.vals["content"]; cn != nil && cn.Kind == yaml.MappingNode {
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
		pt.Type = o.str("type", defType)
		prio := 1000
		switch {
		case pt.Size == "100%":
			prio = 9001
		case pt.Type == "EF02":
			prio = 100
		}
		pt.Priority, _ = o.integer("priority", prio)
		label := parent.kind + "-" + parent.name + "-" + pt.Name
		if len(label) > 36 {
			sum := sha256.Sum256([]byte(label))
			label = hex.EncodeToString(sum[:])[:36]
		}
		pt.Label = o.str("label", label)
		pt.Start = o.str("start", "0")
		end := "+" + pt.Size
		if pt.Size == "100%" {
			end = "-0"
		}
		pt.End = o.str("end", end)
		align := 0
		if strings.HasSuffix(pt.Start, "s") || strings.HasSuffix(pt.End, "s") {
			align = 1
		}
		pt.Alignment, _ = o.integer("alignment", align)
		pt.UUID = o.str("uuid", "")
		pt.Attributes = o.ints("attributes")
		if h := o.get("hybrid"); !isNull(h) {
			if ho := p.object(h, o.kp("hybrid")); ho != nil {
				pt.Hybrid = &Hybrid{MBRPartitionType: ho.str("mbrPartitionType", ""), MBRBootableFlag: ho.boolean("mbrBootableFlag", false)}
				ho.hooks()
				ho.finish()
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
		pt.Device = o.str("device", def)
		pt.DefaultDevice = pt.Device == def
		pt.Content = p.content(o, "content", pt.Device, parentRef{kind: "partition", name: pt.Name}, false)
		o.finish()
	}
	return g
}

func (p *parser) table(c *obj, nd node) *Table {
	t := &Table{node: nd, Format: c.str("format", "gpt")}
	n := c.get("partitions")
	if isNull(n) {
		return t
	}
	path := c.kp("partitions")
	if n.Kind != yaml.SequenceNode {
		p.errorf(path, n, "expected a list of partitions, found %s", describe(n))
		return t
	}
	for i, pn := range n.Content {
		ppath := config.Index(path, i)
		o := p.object(pn, ppath)
		if o == nil {
			continue
		}
		tp := &TablePartition{PartType: o.str("part-type", "primary"), FsType: o.str("fs-type", ""), Name: o.str("name", ""),
			Start: o.str("start", "0%"), End: o.str("end", "100%"), Flags: o.strs("flags"), Bootable: o.boolean("bootable", false),
			Index: i + 1, Path: ppath}
		tp.Device = o.str("device", deviceNumbering(t.Device, tp.Index))
		tp.Content = p.content(o, "content", tp.Device, parentRef{kind: "partition", name: tp.Name}, false)
		o.finish()
		t.Partitions = append(t.Partitions, tp)
	}
	return t
}

func (p *parser) btrfs(c *obj, nd node) *Btrfs {
	b := &Btrfs{node: nd, ExtraArgs: c.strs("extraArgs"), Mountpoint: c.str("mountpoint", ""), Subvolumes: map[string]*Subvolume{}}
	b.MountOptions = mountOptions(c)
	b.Swap = p.swapFiles(c, b.Mountpoint)
	c.eachEntry("subvolumes", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			b.Subvolumes[key] = &Subvolume{Key: key, Name: key, MountOptions: []string{"defaults"}, Path: path}
			return
		}
		if t := o.str("type", "btrfs_subvol"); t != "btrfs_subvol" {
			p.errorf(o.kp("type"), o.vals["type"], "type must be \"btrfs_subvol\" here, found %q", t)
		}
		s := &Subvolume{Key: key, Name: o.str("name", key), ExtraArgs: o.strs("extraArgs"), Mountpoint: o.str("mountpoint", ""), Path: path, Hooks: o.hooks()}
		s.MountOptions = mountOptions(o)
		if s.Mountpoint == "" && o.has("mountOptions") && !(len(s.MountOptions) == 1 && s.MountOptions[0] == "defaults") {
			p.warnf(o.kp("mountOptions"), nil, "subvolume %s has mountOptions but no mountpoint: they are not used", s.Name)
		}
		base := s.Mountpoint
		if base == "" && b.Mountpoint != "" {
			base = strings.TrimSuffix(b.Mountpoint, "/") + "/" + strings.TrimPrefix(s.Name, "/")
		}
		s.Swap = p.swapFiles(o, base)
		o.finish()
		b.Subvolumes[key] = s
	})
	return b
}

func (p *parser) swapFiles(c *obj, base string) map[string]*SwapFile {
	out := map[string]*SwapFile{}
	c.eachEntry("swap", func(key string, n *yaml.Node, path string) {
		o := p.object(n, path)
		if o == nil {
			return
		}
		if t := o.str("type", "btrfs_swap"); t != "btrfs_swap" {
			p.errorf(o.kp("type"), o.vals["type"], "type must be \"btrfs_swap\" here, found %q", t)
		}
		s := &SwapFile{Key: key, Size: o.str("size", ""), FilePath: o.str("path", key), Priority: o.intPtr("priority"),
			DiscardPolicy: o.str("discardPolicy", ""), Path: path}
		if o.has("options") {
			s.Options = o.strs("options")
		} else {
			o.get("options")
			s.Options = []string{"defaults"}
		}
		o.str("mountpoint", "") // internal in disko: always derived
		if base != "" {
			s.Mountpoint = strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(s.FilePath, "/")
		}
		o.hooks()
		o.finish()
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
