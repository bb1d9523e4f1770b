package disko

import (
	"strings"
)

// DeviceRef names a top-level device: disk.main, lvm_vg.pool.
type DeviceRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (d DeviceRef) String() string { return d.Kind + "." + d.Name }

// topKinds is the order of disko.devices' attribute names, which is the
// base order disko's toposort starts from.
var topKinds = []string{"disk", "lvm_vg", "mdadm", "nodev", "zpool"}

// devices lists every top-level device in disko's base order.
func (l *Layout) devices() []DeviceRef {
	var out []DeviceRef
	for _, k := range topKinds {
		var keys []string
		switch k {
		case "disk":
			keys = sortedKeys(l.Disks)
		case "lvm_vg":
			keys = sortedKeys(l.LVMVGs)
		case "mdadm":
			keys = sortedKeys(l.MDADM)
		case "nodev":
			keys = sortedKeys(l.Nodevs)
		case "zpool":
			keys = sortedKeys(l.Zpools)
		}
		for _, n := range keys {
			out = append(out, DeviceRef{Kind: k, Name: n})
		}
	}
	return out
}

// topContent returns the content of a top-level device and its path.
func (l *Layout) topContent(d DeviceRef) (Content, string) {
	switch d.Kind {
	case "disk":
		if x := l.Disks[d.Name]; x != nil {
			return x.Content, x.Path
		}
	case "mdadm":
		if x := l.MDADM[d.Name]; x != nil {
			return x.Content, x.Path
		}
	}
	return nil, ""
}

// WalkContent calls f for c and everything nested in it, parents first,
// partitions in creation order.
func WalkContent(c Content, f func(Content)) {
	if c == nil {
		return
	}
	f(c)
	switch x := c.(type) {
	case *GPT:
		for _, p := range x.Sorted {
			WalkContent(p.Content, f)
		}
	case *Table:
		for _, p := range x.Partitions {
			WalkContent(p.Content, f)
		}
	case *LUKS:
		WalkContent(x.Content, f)
	}
}

// walkDevice calls f for every content owned by a top-level device.
func (l *Layout) walkDevice(d DeviceRef, f func(Content)) {
	switch d.Kind {
	case "disk", "mdadm":
		c, _ := l.topContent(d)
		WalkContent(c, f)
	case "lvm_vg":
		if v := l.LVMVGs[d.Name]; v != nil {
			for _, lv := range v.SortedLVs() {
				WalkContent(lv.Content, f)
			}
		}
	}
}

// memberOf returns the top-level device a member content feeds, if any.
func (l *Layout) memberOf(c Content) (DeviceRef, bool) {
	switch x := c.(type) {
	case *LVMPV:
		if _, ok := l.LVMVGs[x.VG]; ok {
			return DeviceRef{"lvm_vg", x.VG}, true
		}
		for k, v := range l.LVMVGs {
			if v.Name == x.VG {
				return DeviceRef{"lvm_vg", k}, true
			}
		}
		return DeviceRef{"lvm_vg", x.VG}, false
	case *MDRaid:
		if _, ok := l.MDADM[x.Name]; ok {
			return DeviceRef{"mdadm", x.Name}, true
		}
		for k, v := range l.MDADM {
			if v.Name == x.Name {
				return DeviceRef{"mdadm", k}, true
			}
		}
		return DeviceRef{"mdadm", x.Name}, false
	case *ZFS:
		if _, ok := l.Zpools[x.Pool]; ok {
			return DeviceRef{"zpool", x.Pool}, true
		}
		for k, v := range l.Zpools {
			if v.Name == x.Pool {
				return DeviceRef{"zpool", k}, true
			}
		}
		return DeviceRef{"zpool", x.Pool}, false
	}
	return DeviceRef{}, false
}

// members returns, for each device fed by members, the member contents in
// creation order (the order disko appends them to its member lists).
func (l *Layout) members(order []DeviceRef) map[DeviceRef][]Content {
	out := map[DeviceRef][]Content{}
	for _, d := range order {
		l.walkDevice(d, func(c Content) {
			if to, ok := l.memberOf(c); ok {
				out[to] = append(out[to], c)
			}
		})
	}
	return out
}

// sortDevices orders the top-level devices so that every device comes
// after the devices its members sit on (disko's sortDevicesByDependencies).
// On a cycle it returns the devices involved.
func (l *Layout) sortDevices() ([]DeviceRef, []DeviceRef) {
	base := l.devices()
	deps := map[DeviceRef]map[DeviceRef]bool{}
	for _, d := range base {
		l.walkDevice(d, func(c Content) {
			if to, ok := l.memberOf(c); ok {
				if deps[to] == nil {
					deps[to] = map[DeviceRef]bool{}
				}
				deps[to][d] = true
			}
		})
	}
	done := map[DeviceRef]bool{}
	var out []DeviceRef
	for len(out) < len(base) {
		progressed := false
		for _, d := range base {
			if done[d] {
				continue
			}
			ready := true
			for dep := range deps[d] {
				if !done[dep] && dep != d {
					ready = false
				}
				if dep == d {
					ready = false // a device feeding itself
				}
			}
			if ready {
				done[d] = true
				out = append(out, d)
				progressed = true
				break
			}
		}
		if !progressed {
			var cyc []DeviceRef
			for _, d := range base {
				if !done[d] {
					cyc = append(cyc, d)
				}
			}
			return out, cyc
		}
	}
	return out, nil
}

func refsString(refs []DeviceRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}
