package disko

import (
	"fmt"
	"sort"
	"strings"
)

// State is what the disks of a layout hold now. The planner takes it as
// input, so plans are testable without disks; on a host, ProbeState fills
// it from sysfs and the disks' own bytes.
type State struct {
	// Disks by the device path the layout names (/dev/disk/by-id/...).
	Disks map[string]*DiskState `json:"disks"`
}

// DiskState describes one disk.
type DiskState struct {
	Device     string `json:"device"`             // as the layout names it
	Resolved   string `json:"resolved,omitempty"` // the kernel's node, /dev/sda
	Missing    bool   `json:"missing,omitempty"`  // not found on this host
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Size       int64  `json:"size"`
	SectorSize int64  `json:"sectorSize"`
	// RootDisk is set when the running system's / lives on this disk.
	RootDisk bool `json:"rootDisk,omitempty"`
	// Signature is what the whole disk holds: gpt, dos, or a filesystem
	// written straight onto it.
	Signature  *Signature  `json:"signature,omitempty"`
	Partitions []PartState `json:"partitions,omitempty"`
	// Mountpoints and Swap are set when the whole disk is in use.
	Mountpoints []string `json:"mountpoints,omitempty"`
	Swap        bool     `json:"swap,omitempty"`
	Holders     []string `json:"holders,omitempty"`
}

// PartState is one partition as found.
type PartState struct {
	Index       int        `json:"index"`
	Device      string     `json:"device,omitempty"`
	Start       uint64     `json:"start"` // sectors
	End         uint64     `json:"end"`
	Name        string     `json:"name,omitempty"`
	TypeGUID    string     `json:"typeGUID,omitempty"`
	UUID        string     `json:"uuid,omitempty"`
	Attributes  uint64     `json:"attributes,omitempty"`
	Signature   *Signature `json:"signature,omitempty"`
	Mountpoints []string   `json:"mountpoints,omitempty"`
	Swap        bool       `json:"swap,omitempty"`
	// Holders are device-mapper or md devices built on the partition.
	Holders []string `json:"holders,omitempty"`
}

// Empty reports whether the disk holds nothing nivis can see.
func (d *DiskState) Empty() bool {
	return d != nil && d.Signature == nil && len(d.Partitions) == 0
}

// InUse lists what is active on the disk: mounts, swap, holders.
func (d *DiskState) InUse() []string {
	var out []string
	add := func(dev string, mps []string, swap bool, holders []string) {
		for _, m := range mps {
			out = append(out, fmt.Sprintf("%s mounted at %s", dev, m))
		}
		if swap {
			out = append(out, dev+" is active swap")
		}
		for _, h := range holders {
			out = append(out, fmt.Sprintf("%s is held by %s", dev, h))
		}
	}
	add(d.Resolved, d.Mountpoints, d.Swap, d.Holders)
	for _, p := range d.Partitions {
		add(p.Device, p.Mountpoints, p.Swap, p.Holders)
	}
	return out
}

// Describe says in one line what the disk holds now.
func (d *DiskState) Describe() string {
	switch {
	case d == nil:
		return "unknown"
	case d.Missing:
		return "not found on this host"
	case d.Empty():
		return "empty (no partition table or signature)"
	}
	var parts []string
	if d.Signature != nil {
		switch d.Signature.Type {
		case "gpt":
			parts = append(parts, fmt.Sprintf("gpt, %s", plural(len(d.Partitions), "partition")))
		case "dos":
			parts = append(parts, fmt.Sprintf("dos (MBR), %s", plural(len(d.Partitions), "partition")))
		default:
			parts = append(parts, "whole-disk "+d.Signature.String())
		}
	}
	return strings.Join(parts, "; ")
}

// describePart says what a partition holds now.
func describePart(p PartState) string {
	var b strings.Builder
	if p.Signature != nil {
		b.WriteString(p.Signature.String())
	} else {
		b.WriteString("no signature")
	}
	for _, m := range p.Mountpoints {
		fmt.Fprintf(&b, ", mounted at %s", m)
	}
	if p.Swap {
		b.WriteString(", active swap")
	}
	if len(p.Holders) > 0 {
		fmt.Fprintf(&b, ", held by %s", strings.Join(p.Holders, " "))
	}
	return b.String()
}

func (d *DiskState) partition(i int) *PartState {
	for k := range d.Partitions {
		if d.Partitions[k].Index == i {
			return &d.Partitions[k]
		}
	}
	return nil
}

func (d *DiskState) SortPartitions() {
	sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Index < d.Partitions[j].Index })
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
