package apply

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// ProbeState reads what the layout's disks hold now: identity from
// sysfs, partitions from the on-disk GPT, signatures from superblocks,
// and what is mounted, swapped on or held. Disks that cannot be found are
// marked Missing, not an error: the plan says so.
func ProbeState(ctx context.Context, l *disko.Layout) (*disko.State, error) {
	r := &Resolver{Wait: 2 * time.Second}
	st := &disko.State{Disks: map[string]*disko.DiskState{}}
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	swaps, err := readSwaps()
	if err != nil {
		return nil, err
	}
	var roots map[string]bool
	for _, k := range sortedKeys(l.Disks) {
		d := l.Disks[k]
		b, err := r.Find(ctx, d.Device)
		if err != nil || b.Size == 0 {
			// A loop device with nothing attached, an empty card reader: no disk.
			st.Disks[d.Device] = &disko.DiskState{Device: d.Device, Missing: true}
			continue
		}
		if roots == nil {
			roots = rootDisks(r.devs)
		}
		st.Disks[d.Device] = probeDisk(r, b, d.Device, mounts, swaps, roots)
	}
	return st, nil
}

func probeDisk(r *Resolver, b *blockDev, device string, mounts []mountInfo, swaps []activeSwap, roots map[string]bool) *disko.DiskState {
	ds := &disko.DiskState{Device: device, Resolved: b.Node(), Model: b.Model, Serial: b.Serial, Size: b.Size, SectorSize: b.SectorSize}
	whole := b
	if b.Disk != "" {
		whole = r.devs[b.Disk]
	}
	ds.RootDisk = whole != nil && roots[whole.Name]
	node, err := ensureNode(b)
	if err != nil {
		return ds
	}
	f, err := os.Open(node)
	if err != nil {
		return ds
	}
	defer f.Close()
	if size, ss, err := blockSize(f); err == nil {
		ds.Size, ds.SectorSize = size, ss
	}
	ds.Signature, _ = disko.Probe(f, ds.Size)
	ds.Mountpoints, ds.Swap, ds.Holders = usage(r, b, mounts, swaps)
	if ds.Signature != nil && ds.Signature.Type == "gpt" {
		if t, err := gpt.Read(f, int(ds.SectorSize), int(ds.SectorSize)); err == nil {
			for _, p := range t.Partitions {
				if p.Type == gpt.Unused {
					continue
				}
				ps := disko.PartState{Index: p.Index, Start: p.Start, End: p.End, Name: p.Name, TypeGUID: strings.ToUpper(string(p.Type)),
					UUID: strings.ToUpper(p.GUID), Attributes: p.Attributes}
				var sig *disko.Signature
				if kb, err := r.partitionOf(b, p.Index); err == nil {
					ps.Device = kb.Node()
					ps.Mountpoints, ps.Swap, ps.Holders = usage(r, kb, mounts, swaps)
				}
				off := int64(p.Start) * ds.SectorSize
				length := int64(p.End-p.Start+1) * ds.SectorSize
				sig, _ = disko.Probe(io.NewSectionReader(f, off, length), length)
				ps.Signature = sig
				ds.Partitions = append(ds.Partitions, ps)
			}
		}
	} else {
		for _, k := range sortedKeys(r.devs) {
			if kb := r.devs[k]; kb.Disk == b.Name {
				ps := disko.PartState{Index: kb.Partition, Device: kb.Node(), Start: kb.Start * 512 / uint64(ds.SectorSize)}
				ps.End = ps.Start + uint64(kb.Size/ds.SectorSize) - 1
				ps.Mountpoints, ps.Swap, ps.Holders = usage(r, kb, mounts, swaps)
				if pf, err := os.Open(kb.Node()); err == nil {
					ps.Signature, _ = disko.Probe(pf, kb.Size)
					pf.Close()
				}
				ds.Partitions = append(ds.Partitions, ps)
			}
		}
	}
	ds.SortPartitions()
	return ds
}

// usage says where b is mounted, whether it is active swap, and what
// holds it (dm and md devices).
func usage(r *Resolver, b *blockDev, mounts []mountInfo, swaps []activeSwap) (mps []string, swap bool, holders []string) {
	n := b.devNum()
	for _, m := range mounts {
		if unix.Mkdev(m.Major, m.Minor) == n {
			mps = append(mps, m.Mountpoint)
			continue
		}
		if strings.HasPrefix(m.Source, "/dev/") && m.Major == 0 {
			if d, err := devOf(m.Source); err == nil && d == n {
				mps = append(mps, m.Mountpoint)
			}
		}
	}
	for _, s := range swaps {
		if s.IsDev && s.Dev == n {
			swap = true
		}
	}
	for _, h := range b.Holders {
		if hb := r.devs[h]; hb != nil && hb.DMName != "" {
			holders = append(holders, h+" ("+hb.DMName+")")
		} else {
			holders = append(holders, h)
		}
	}
	return mps, swap, holders
}
