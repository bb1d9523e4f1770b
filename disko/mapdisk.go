package disko

import "fmt"

// SetDiskDevice points the layout's disk key at device, like
// disko-install's --disk NAME DEVICE: the same layout, another machine's
// disk names. Contents that sat on the old device move with it.
func (l *Layout) SetDiskDevice(key, device string) error {
	d := l.Disks[key]
	if d == nil {
		return fmt.Errorf("the layout has no disk %q (it has %v)", key, sortedKeys(l.Disks))
	}
	old := d.Device
	d.Device = device
	var fix func(c Content)
	fix = func(c Content) {
		switch x := c.(type) {
		case *GPT:
			if x.Device == old {
				x.Device = device
			}
			for _, p := range x.Sorted {
				fix(p.Content)
			}
		case *Table:
			if x.Device == old {
				x.Device = device
			}
			for _, p := range x.Partitions {
				if p.Device == deviceNumbering(old, p.Index) {
					p.Device = deviceNumbering(device, p.Index)
					if p.Content != nil {
						if n, ok := nodeOf(p.Content); ok && n.Device == deviceNumbering(old, p.Index) {
							n.Device = p.Device
						}
					}
				}
				fix(p.Content)
			}
		case *LUKS:
			if x.Device == old {
				x.Device = device
			}
			fix(x.Content)
		default:
			if n, ok := nodeOf(c); ok && n.Device == old {
				n.Device = device
			}
		}
	}
	fix(d.Content)
	return nil
}

// nodeOf returns the common part of a content.
func nodeOf(c Content) (*node, bool) {
	switch x := c.(type) {
	case *GPT:
		return &x.node, true
	case *Table:
		return &x.node, true
	case *Filesystem:
		return &x.node, true
	case *Btrfs:
		return &x.node, true
	case *Swap:
		return &x.node, true
	case *LUKS:
		return &x.node, true
	case *LVMPV:
		return &x.node, true
	case *MDRaid:
		return &x.node, true
	case *ZFS:
		return &x.node, true
	case *BcachefsMember:
		return &x.node, true
	}
	return nil, false
}
