package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/nivis/nivis/disko"
	"golang.org/x/sys/unix"
)

// Resolver turns the names a layout uses (/dev/disk/by-partlabel/...,
// /dev/disk/by-id/..., /dev/mapper/x, /dev/vg/lv, /dev/md/x) into kernel
// device nodes, from sysfs and the disks' own metadata, so it works where
// no udev runs. Where udev runs, a missing name is waited for, boundedly.
type Resolver struct {
	// Wait bounds the wait for a name to appear when udev runs (default 10s).
	Wait time.Duration
	devs map[string]*blockDev
}

// udevRunning reports whether udevd manages /dev here.
func udevRunning() bool {
	_, err := os.Stat("/run/udev/control")
	return err == nil
}

func (r *Resolver) refresh() error {
	devs, err := scanBlock()
	if err != nil {
		return err
	}
	r.devs = devs
	return nil
}

// Resolve returns the /dev node for name.
func (r *Resolver) Resolve(ctx context.Context, name string) (string, error) {
	b, err := r.Find(ctx, name)
	if err != nil {
		return "", err
	}
	return ensureNode(b)
}

// Find returns the block device for name, waiting (boundedly) for udev
// when it runs.
func (r *Resolver) Find(ctx context.Context, name string) (*blockDev, error) {
	wait := r.Wait
	if wait == 0 {
		wait = 10 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		if err := r.refresh(); err != nil {
			return nil, err
		}
		b, err := r.find(name)
		if err == nil || !udevRunning() || time.Now().After(deadline) {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *Resolver) find(name string) (*blockDev, error) {
	if name == "" {
		return nil, fmt.Errorf("no device name")
	}
	// A node or link that exists (devtmpfs node, udev link) wins.
	if real, err := filepath.EvalSymlinks(name); err == nil {
		if n, err := devOf(real); err == nil {
			if b := byDevNum(r.devs, n); b != nil {
				return b, nil
			}
		}
	}
	const byPrefix = "/dev/disk/by-"
	switch {
	case strings.HasPrefix(name, byPrefix):
		rest := name[len(byPrefix):]
		kind, val, _ := strings.Cut(rest, "/")
		val = disko.UnescapeUdev(val)
		switch kind {
		case "partlabel":
			return r.one(name, func(b *blockDev) bool { return b.Partition > 0 && r.partEntry(b) != nil && r.partEntry(b).Name == val })
		case "partuuid":
			return r.one(name, func(b *blockDev) bool {
				return b.Partition > 0 && r.partEntry(b) != nil && strings.EqualFold(r.partEntry(b).GUID, val)
			})
		case "uuid":
			return r.one(name, func(b *blockDev) bool {
				s := r.signature(b)
				return s != nil && s.Type != "gpt" && s.Type != "dos" && strings.EqualFold(s.UUID, val)
			})
		case "label":
			return r.one(name, func(b *blockDev) bool {
				s := r.signature(b)
				return s != nil && s.Type != "gpt" && s.Type != "dos" && s.Label == val
			})
		case "diskseq":
			return r.one(name, func(b *blockDev) bool { return b.Disk == "" && b.DiskSeq == val })
		case "id":
			if base, part, ok := cutPart(val); ok {
				if strings.HasPrefix(base, "md-name-") {
					if md, err := r.mdByName(strings.TrimPrefix(base, "md-name-")); err == nil {
						return r.partitionOf(md, part)
					}
				}
				if d, err := r.one(name, func(b *blockDev) bool { return b.Disk == "" && r.hasID(b, base) }); err == nil {
					return r.partitionOf(d, part)
				}
			}
			if strings.HasPrefix(val, "md-name-") {
				return r.mdByName(strings.TrimPrefix(val, "md-name-"))
			}
			return r.one(name, func(b *blockDev) bool { return b.Disk == "" && r.hasID(b, val) })
		}
		return nil, fmt.Errorf("%s: /dev/disk/by-%s names cannot be resolved without udev; use by-id, by-partlabel, by-uuid or a kernel name", name, kind)
	case strings.HasPrefix(name, "/dev/mapper/"):
		dm := strings.TrimPrefix(name, "/dev/mapper/")
		return r.one(name, func(b *blockDev) bool { return b.DMName == dm })
	case strings.HasPrefix(name, "/dev/md/"):
		return r.mdByName(strings.TrimPrefix(name, "/dev/md/"))
	}
	// /dev/VG/LV: device-mapper names it VG-LV with dashes doubled.
	if parts := strings.Split(strings.TrimPrefix(name, "/dev/"), "/"); len(parts) == 2 && strings.HasPrefix(name, "/dev/") {
		dm := strings.ReplaceAll(parts[0], "-", "--") + "-" + strings.ReplaceAll(parts[1], "-", "--")
		if b, err := r.one(name, func(b *blockDev) bool { return b.DMName == dm }); err == nil {
			return b, nil
		}
	}
	if b := r.devs[strings.TrimPrefix(name, "/dev/")]; b != nil && strings.HasPrefix(name, "/dev/") {
		return b, nil
	}
	return nil, fmt.Errorf("device %s not found", name)
}

// one returns the single device matching f; two matches are an error,
// never a guess (the wrong disk wiped is the worst outcome).
func (r *Resolver) one(name string, f func(*blockDev) bool) (*blockDev, error) {
	var found []*blockDev
	for _, k := range sortedKeys(r.devs) {
		if f(r.devs[k]) {
			found = append(found, r.devs[k])
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("device %s not found", name)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, b := range found {
		names = append(names, b.Node())
	}
	return nil, fmt.Errorf("device %s is ambiguous: it matches %s", name, strings.Join(names, ", "))
}

func cutPart(v string) (string, int, bool) {
	i := strings.LastIndex(v, "-part")
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(v[i+5:])
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return v[:i], n, true
}

func (r *Resolver) partitionOf(d *blockDev, n int) (*blockDev, error) {
	for _, k := range sortedKeys(r.devs) {
		if b := r.devs[k]; b.Disk == d.Name && b.Partition == n {
			return b, nil
		}
	}
	return nil, fmt.Errorf("partition %d of %s not found", n, d.Node())
}

// PartitionOf returns the node of partition n of the disk at node.
func (r *Resolver) PartitionOf(ctx context.Context, disk string, n int) (string, error) {
	d, err := r.Find(ctx, disk)
	if err != nil {
		return "", err
	}
	p, err := r.partitionOf(d, n)
	if err != nil {
		return "", err
	}
	return ensureNode(p)
}

// partEntry reads the GPT entry of a partition from its disk.
func (r *Resolver) partEntry(b *blockDev) *gpt.Partition {
	t := readGPT("/dev/" + b.Disk)
	if t == nil {
		return nil
	}
	for _, p := range t.Partitions {
		if p.Index == b.Partition && p.Type != gpt.Unused {
			return p
		}
	}
	return nil
}

func (r *Resolver) signature(b *blockDev) *disko.Signature {
	f, err := os.Open(b.Node())
	if err != nil {
		return nil
	}
	defer f.Close()
	s, _ := disko.Probe(f, b.Size)
	return s
}

// ids lists the by-id names udev would give a whole disk.
func (r *Resolver) ids(b *blockDev) []string {
	clean := func(s string) string {
		s = strings.TrimSpace(s)
		s = strings.Join(strings.Fields(s), "_")
		return strings.Map(func(c rune) rune {
			if c < 0x20 || c == '/' {
				return '_'
			}
			return c
		}, s)
	}
	var out []string
	model, serial := clean(b.Model), clean(b.Serial)
	switch {
	case b.Subsystem == "virtio" || strings.HasPrefix(b.Name, "vd"):
		if serial != "" {
			out = append(out, "virtio-"+serial)
		}
	case strings.HasPrefix(b.Name, "nvme"):
		if model != "" && serial != "" {
			out = append(out, "nvme-"+model+"_"+serial)
		}
	default:
		if model != "" && serial != "" {
			out = append(out, "ata-"+model+"_"+serial, "scsi-"+model+"_"+serial, "usb-"+model+"_"+serial)
		}
	}
	if w := b.WWID; w != "" {
		for _, p := range []string{"naa.", "eui.", "t10."} {
			if strings.HasPrefix(w, p) {
				out = append(out, "wwn-0x"+strings.TrimPrefix(w, p))
			}
		}
		out = append(out, "nvme-"+w)
	}
	if b.DMName != "" {
		out = append(out, "dm-name-"+b.DMName)
	}
	if b.DMUUID != "" {
		out = append(out, "dm-uuid-"+b.DMUUID)
	}
	return out
}

func (r *Resolver) hasID(b *blockDev, id string) bool {
	for _, x := range r.ids(b) {
		if x == id {
			return true
		}
	}
	return false
}

// mdByName finds an md array by its name ("raid1" or "any:raid1"): the
// /dev/md/NAME link mdadm makes, else the name in a member's superblock.
func (r *Resolver) mdByName(name string) (*blockDev, error) {
	short := name
	if _, after, ok := strings.Cut(name, ":"); ok {
		short = after
	}
	if real, err := filepath.EvalSymlinks("/dev/md/" + short); err == nil {
		if n, err := devOf(real); err == nil {
			if b := byDevNum(r.devs, n); b != nil {
				return b, nil
			}
		}
	}
	return r.one("/dev/md/"+short, func(b *blockDev) bool {
		if !strings.HasPrefix(b.Name, "md") || b.Disk != "" || len(b.Slaves) == 0 {
			return false
		}
		s := r.signature(r.devs[b.Slaves[0]])
		if s == nil || s.Type != "linux_raid_member" {
			return false
		}
		_, label, _ := strings.Cut(s.Label, ":")
		return label == short || s.Label == short
	})
}

// ensureNode returns b's /dev node, creating it when /dev is not a
// devtmpfs and nothing else made it.
func ensureNode(b *blockDev) (string, error) {
	node := b.Node()
	if st, err := os.Stat(node); err == nil && st.Mode()&os.ModeDevice != 0 {
		return node, nil
	}
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(b.devNum())); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("create device node %s: %w", node, err)
	}
	return node, nil
}

// readGPT reads the GPT of a disk node, nil when there is none.
func readGPT(node string) *gpt.Table {
	f, err := os.Open(node)
	if err != nil {
		return nil
	}
	defer f.Close()
	ss := int64(512)
	if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n > 0 {
		ss = int64(n)
	}
	t, err := gpt.Read(f, int(ss), int(ss))
	if err != nil {
		return nil
	}
	return t
}
