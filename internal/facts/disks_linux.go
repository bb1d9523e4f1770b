//go:build linux

package facts

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// blockIndex knows every block device of /sys/class/block and what uses it,
// so that each disk can say what is mounted from it even through dm or md.
type blockIndex struct {
	byDevNum map[string]string // "254:0" -> "vda"
	dmByName map[string]string // device-mapper name -> "dm-0"
	mounts   map[string][]Mount
	swap     map[string]bool
	rootDev  string
	holders  map[string][]string
}

func (g *gatherer) disks() {
	ix := g.indexBlock()
	entries, err := os.ReadDir(g.p("/sys/block"))
	if err != nil {
		g.warnf("disks: %v", err)
		return
	}
	byID := g.diskLinks("/dev/disk/by-id")
	for _, e := range entries {
		name := e.Name()
		sys := "/sys/block/" + name
		d := Disk{
			Name:      name,
			Path:      devPath(name),
			Kind:      g.blockKind(name),
			DevNum:    g.readString(sys + "/dev"),
			SizeBytes: g.sectors(sys + "/size"),
		}
		if d.SizeBytes == 0 && (d.Kind == "loop" || d.Kind == "ram" || d.Kind == "zram" || d.Kind == "nbd") {
			continue // unused pseudo devices: noise
		}
		if g.readString(sys+"/hidden") == "1" {
			continue // NVMe multipath paths (nvme0c0n1): no /dev node, the nvme0n1 head is listed
		}
		d.Vendor = g.readString(sys + "/device/vendor")
		d.Model = g.readString(sys + "/device/model")
		d.Serial = g.diskSerial(sys)
		d.WWID = firstNonEmpty(g.readString(sys+"/wwid"), g.readString(sys+"/device/wwid"))
		d.Rotational = g.readString(sys+"/queue/rotational") == "1"
		d.Removable = g.readString(sys+"/removable") == "1"
		d.ReadOnly = g.readString(sys+"/ro") == "1"
		d.ByID = byID[name]
		d.Slaves = g.dirNames(sys + "/slaves")
		d.Usage = ix.usage(name, "", 0)

		subs, _ := os.ReadDir(g.p(sys))
		for _, s := range subs {
			psys := sys + "/" + s.Name()
			if !g.exists(psys + "/partition") {
				continue
			}
			num, _ := strconv.Atoi(g.readString(psys + "/partition"))
			p := Partition{
				Name:       s.Name(),
				Path:       devPath(s.Name()),
				Number:     num,
				DevNum:     g.readString(psys + "/dev"),
				StartBytes: g.sectors(psys + "/start"),
				SizeBytes:  g.sectors(psys + "/size"),
				Label:      ueventValue(g.readString(psys+"/uevent"), "PARTNAME"),
				ByID:       byID[s.Name()],
				Usage:      ix.usage(s.Name(), "", 0),
			}
			if p.HoldsRoot {
				d.HoldsRoot = true
			}
			d.Partitions = append(d.Partitions, p)
		}
		sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Number < d.Partitions[j].Number })
		g.f.Disks = append(g.f.Disks, d)
	}
	sort.Slice(g.f.Disks, func(i, j int) bool { return g.f.Disks[i].Name < g.f.Disks[j].Name })
}

// indexBlock reads device numbers, dm names, holders, mountinfo and swaps.
func (g *gatherer) indexBlock() *blockIndex {
	ix := &blockIndex{
		byDevNum: map[string]string{},
		dmByName: map[string]string{},
		mounts:   map[string][]Mount{},
		swap:     map[string]bool{},
		holders:  map[string][]string{},
	}
	all, err := os.ReadDir(g.p("/sys/class/block"))
	if err != nil {
		g.warnf("block devices: %v", err)
	}
	for _, e := range all {
		n := e.Name()
		if dn := g.readString("/sys/class/block/" + n + "/dev"); dn != "" {
			ix.byDevNum[dn] = n
		}
		if dm := g.readString("/sys/class/block/" + n + "/dm/name"); dm != "" {
			ix.dmByName[dm] = n
		}
		ix.holders[n] = g.dirNames("/sys/class/block/" + n + "/holders")
	}

	if data, ok := g.read("/proc/self/mountinfo"); ok {
		ms, err := parseMountinfo(data)
		if err != nil {
			g.warnf("mountinfo: %v", err)
		}
		for _, m := range ms {
			dev := ix.byDevNum[m.DevNum]
			if dev == "" {
				// btrfs and other multi-device filesystems report an
				// anonymous device number: go by the source instead.
				dev = g.devFromPath(ix, m.Source)
			}
			if dev == "" {
				continue
			}
			ix.mounts[dev] = append(ix.mounts[dev], Mount{Mountpoint: m.Mountpoint, FSType: m.FSType, Source: m.Source, Options: m.Options})
			if m.Mountpoint == "/" {
				ix.rootDev = dev // the last "/" is the one on top
			}
		}
	} else {
		g.warnf("mountinfo: /proc/self/mountinfo is missing")
	}
	for _, s := range g.f.Swaps {
		if s.Type != "partition" {
			continue
		}
		if dev := g.devFromPath(ix, s.Path); dev != "" {
			ix.swap[dev] = true
		}
	}
	return ix
}

// devFromPath maps /dev/vda1, /dev/mapper/NAME or a /dev/disk/by-* link to
// the kernel's device name.
func (g *gatherer) devFromPath(ix *blockIndex, p string) string {
	if !strings.HasPrefix(p, "/dev/") {
		return ""
	}
	if n, ok := strings.CutPrefix(p, "/dev/mapper/"); ok {
		if dm := ix.dmByName[n]; dm != "" {
			return dm
		}
	}
	name := strings.TrimPrefix(filepath.Clean(p), "/dev/")
	if real, err := filepath.EvalSymlinks(g.p(p)); err == nil {
		if rel, ok := strings.CutPrefix(real, filepath.Clean(g.p("/dev"))+"/"); ok {
			name = rel
		}
	}
	name = strings.ReplaceAll(name, "/", "!") // sysfs spells cciss/c0d0 as cciss!c0d0
	if _, ok := ix.holders[name]; ok {
		return name
	}
	return ""
}

// usage collects the mounts and swap of dev and, recursively, of the
// devices built on it; via is the holder chain so far.
func (ix *blockIndex) usage(dev, via string, depth int) Usage {
	u := Usage{Holders: ix.holders[dev]}
	if len(u.Holders) == 0 {
		u.Holders = nil
	}
	for _, m := range ix.mounts[dev] {
		m.Via = via
		u.Mounts = append(u.Mounts, m)
	}
	u.Swap = ix.swap[dev]
	u.HoldsRoot = ix.rootDev != "" && ix.rootDev == dev
	if depth > 8 {
		return u
	}
	for _, h := range ix.holders[dev] {
		chain := h
		if via != "" {
			chain = via + " > " + h
		}
		hu := ix.usage(h, chain, depth+1)
		u.Mounts = append(u.Mounts, hu.Mounts...)
		u.Swap = u.Swap || hu.Swap
		u.HoldsRoot = u.HoldsRoot || hu.HoldsRoot
	}
	return u
}

// diskLinks maps device names to the links of a /dev/disk/by-* directory.
// Without udev (this is common in rescue systems) the directory is absent.
func (g *gatherer) diskLinks(dir string) map[string][]string {
	out := map[string][]string{}
	entries, err := os.ReadDir(g.p(dir))
	if err != nil {
		return out
	}
	for _, e := range entries {
		real, err := filepath.EvalSymlinks(g.p(dir + "/" + e.Name()))
		if err != nil {
			continue
		}
		name := filepath.Base(real)
		out[name] = append(out[name], dir+"/"+e.Name())
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// diskSerial tries the places a serial number shows up: virtio and nvme
// expose it as text, SCSI/SATA as VPD page 0x80 (4-byte header, then ASCII).
func (g *gatherer) diskSerial(sys string) string {
	for _, p := range []string{sys + "/serial", sys + "/device/serial"} {
		if s := g.readString(p); s != "" {
			return s
		}
	}
	if b, err := os.ReadFile(g.p(sys + "/device/vpd_pg80")); err == nil && len(b) > 4 {
		return strings.Trim(string(b[4:]), " \x00\n")
	}
	return ""
}

func (g *gatherer) blockKind(name string) string {
	for _, k := range []struct{ prefix, kind string }{
		{"loop", "loop"}, {"dm-", "dm"}, {"md", "md"}, {"zram", "zram"}, {"ram", "ram"}, {"nbd", "nbd"},
	} {
		if strings.HasPrefix(name, k.prefix) {
			return k.kind
		}
	}
	if g.exists("/sys/block/" + name + "/device") {
		return "disk"
	}
	return "virtual"
}

// sectors reads a sysfs size in 512-byte sectors (always 512, whatever the
// device's logical block size) and returns bytes.
func (g *gatherer) sectors(abs string) uint64 {
	n, _ := strconv.ParseUint(g.readString(abs), 10, 64)
	return n * 512
}

// dirNames lists a directory's entries, sorted; missing is empty.
func (g *gatherer) dirNames(abs string) []string {
	entries, err := os.ReadDir(g.p(abs))
	if err != nil || len(entries) == 0 {
		return nil
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// devPath is the /dev path of a kernel device name ("cciss!c0d0" is
// /dev/cciss/c0d0).
func devPath(name string) string { return "/dev/" + strings.ReplaceAll(name, "!", "/") }

func ueventValue(uevent, key string) string {
	for _, line := range strings.Split(uevent, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
