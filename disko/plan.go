package disko

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

// Plan is everything a mode will do to the layout's disks.
type Plan struct {
	Mode  Mode       `json:"mode"`
	Root  string     `json:"root"`
	Disks []DiskPlan `json:"disks"`
	Other []string   `json:"other,omitempty"` // md arrays, VGs, nodev mounts, one line each
	Ops   []Op       `json:"ops"`
}

// DiskPlan is the view of one disk for people: what is there, what goes.
type DiskPlan struct {
	Key     string     `json:"key"`
	Device  string     `json:"device"`
	Now     *DiskState `json:"now,omitempty"`
	Destroy bool       `json:"destroy"` // everything on it is wiped
	Keep    string     `json:"keep,omitempty"`
	Table   string     `json:"table,omitempty"`
	Holds   string     `json:"holds,omitempty"` // content when there is no table
	Parts   []PartPlan `json:"partitions,omitempty"`
}

// PartPlan is one partition of a DiskPlan.
type PartPlan struct {
	Index       int    `json:"index"`
	Key         string `json:"key"`
	Label       string `json:"label"`
	Type        string `json:"type"`
	StartSector uint64 `json:"startSector,omitempty"`
	EndSector   uint64 `json:"endSector,omitempty"`
	Bytes       int64  `json:"bytes,omitempty"`
	Holds       string `json:"holds"`
	Action      string `json:"action"` // create, keep
	Note        string `json:"note,omitempty"`
}

// PlanOptions are the choices that shape a plan.
type PlanOptions struct {
	// Root is where the layout's mountpoints go (default /mnt).
	Root string
	// AllowRootDisk lets a plan touch the disk the running system's root
	// is on; only the in-RAM rescue agent sets it.
	AllowRootDisk bool
}

// ErrRootDisk is returned for plans that would change the disk holding
// the running system's root.
var ErrRootDisk = errors.New("refusing to change the disk that holds the running system's root filesystem")

// NewPlan builds the plan for mode from the layout and the current state
// (nil when unknown: then no sizes or current contents are shown). Fit
// problems go to r with their paths; the error is non-nil when r gained
// errors or the plan is refused.
func NewPlan(l *Layout, m Mode, st *State, o PlanOptions, r *config.Report) (*Plan, error) {
	if r == nil {
		r = &config.Report{}
	}
	if o.Root == "" {
		o.Root = "/mnt"
	}
	before := len(r.Errors())
	b := &planner{l: l, m: m, st: st, o: o, r: r, p: &Plan{Mode: m, Root: o.Root}}
	order, cycle := l.sortDevices()
	if len(cycle) > 0 {
		r.Add(config.SevError, l.Path, l.Pos.At(l.Path), "devices depend on each other in a cycle: %s", refsString(cycle))
		return nil, exitcode.Wrap(exitcode.Usage, r.Err())
	}
	b.order = order
	b.members = l.members(order)
	if m.Writes() && !o.AllowRootDisk {
		for _, k := range sortedKeys(l.Disks) {
			d := l.Disks[k]
			if ds := b.state(d.Device); ds != nil && ds.RootDisk {
				return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("%w: disk %s is %s (%s); run this from the rescue system (nivis takeover) instead",
					ErrRootDisk, k, d.Device, ds.Resolved))
			}
		}
	}
	b.diskViews()
	if m.Unmount {
		b.unmountPhase()
	}
	if m.Destroy {
		b.destroyPhase()
	}
	if m.Format {
		b.formatPhase()
	}
	if m.Mount {
		b.mountPhase()
	}
	if len(r.Errors()) > before {
		return b.p, exitcode.Wrap(exitcode.Usage, r.Err())
	}
	return b.p, nil
}

type planner struct {
	l       *Layout
	m       Mode
	st      *State
	o       PlanOptions
	r       *config.Report
	p       *Plan
	order   []DeviceRef
	members map[DeviceRef][]Content
	// placed partitions by disk key, for views and GPT ops.
	placed map[string]map[int]Placed
	// kept partitions (exist already, format leaves them).
	kept map[string]map[int]bool
}

func (b *planner) state(dev string) *DiskState {
	if b.st == nil || b.st.Disks == nil {
		return nil
	}
	return b.st.Disks[dev]
}

func (b *planner) errorf(p, format string, args ...any) {
	b.r.Add(config.SevError, p, b.l.Pos.At(p), format, args...)
}

func (b *planner) add(op Op) {
	if op.Argv == nil {
		op.Argv = op.ToolArgv(op.Device)
	}
	b.p.Ops = append(b.p.Ops, op)
}

// existing returns the current partitions of a disk that format will keep:
// none when destroy runs first.
func (b *planner) existing(d *Disk) *DiskState {
	if b.m.Destroy && d.Destroy {
		return nil
	}
	return b.state(d.Device)
}

// diskViews lays out each disk's partitions (when its size is known) and
// builds the per-disk tree.
func (b *planner) diskViews() {
	b.placed = map[string]map[int]Placed{}
	b.kept = map[string]map[int]bool{}
	for _, k := range sortedKeys(b.l.Disks) {
		d := b.l.Disks[k]
		ds := b.state(d.Device)
		if ds != nil && ds.Missing {
			b.r.Add(config.SevWarning, config.Key(d.Path, "device"), b.l.Pos.At(config.Key(d.Path, "device")),
				"disk %s (%s) is not on this host: nothing can be done to it here", k, d.Device)
		}
		v := DiskPlan{Key: k, Device: d.Device, Now: ds, Destroy: b.m.Destroy && d.Destroy}
		if b.m.Destroy && !d.Destroy {
			v.Keep = "destroy = false: left as it is"
		}
		switch c := d.Content.(type) {
		case *GPT:
			v.Table = "gpt"
			pl, kept := b.layoutGPT(d, c, ds)
			b.placed[k], b.kept[k] = pl, kept
			for _, pt := range c.Sorted {
				pp := PartPlan{Index: pt.Index, Key: pt.Key, Label: pt.Label, Type: pt.Type, Holds: describeContent(pt.Content), Action: "create"}
				if x, ok := pl[pt.Index]; ok {
					pp.StartSector, pp.EndSector = x.Start, x.End
					ss := int64(512)
					if ds != nil && ds.SectorSize > 0 {
						ss = ds.SectorSize
					}
					pp.Bytes = int64(x.End-x.Start+1) * ss
				}
				if kept[pt.Index] {
					pp.Action = "keep"
					if ex := b.existing(d); ex != nil {
						if cur := ex.partition(pt.Index); cur != nil && cur.Name != pt.Label {
							pp.Note = fmt.Sprintf("exists as %q: renamed to %q", cur.Name, pt.Label)
						}
					}
				}
				v.Parts = append(v.Parts, pp)
			}
		case nil:
			v.Holds = "(no content)"
		default:
			v.Holds = describeContent(c)
		}
		b.p.Disks = append(b.p.Disks, v)
	}
	for _, k := range sortedKeys(b.l.MDADM) {
		md := b.l.MDADM[k]
		var mem []string
		for _, c := range b.members[DeviceRef{"mdadm", k}] {
			_, dev := c.Where()
			mem = append(mem, dev)
		}
		b.p.Other = append(b.p.Other, fmt.Sprintf("mdadm %s: raid%d of %s, holds %s", md.Device(), md.Level, strings.Join(mem, " "), describeContent(md.Content)))
	}
	for _, k := range sortedKeys(b.l.LVMVGs) {
		vg := b.l.LVMVGs[k]
		var lvs []string
		for _, lv := range vg.SortedLVs() {
			lvs = append(lvs, fmt.Sprintf("%s %s (%s)", lv.Name, lv.Size, describeContent(lv.Content)))
		}
		var mem []string
		for _, c := range b.members[DeviceRef{"lvm_vg", k}] {
			_, dev := c.Where()
			mem = append(mem, dev)
		}
		b.p.Other = append(b.p.Other, fmt.Sprintf("lvm_vg %s on %s: %s", vg.Name, strings.Join(mem, " "), strings.Join(lvs, "; ")))
	}
	for _, k := range sortedKeys(b.l.Zpools) {
		b.p.Other = append(b.p.Other, fmt.Sprintf("zpool %s", b.l.Zpools[k].Name))
	}
	for _, k := range sortedKeys(b.l.Nodevs) {
		n := b.l.Nodevs[k]
		b.p.Other = append(b.p.Other, fmt.Sprintf("nodev %s -> %s (%s)", n.FSType, n.Mountpoint, strings.Join(n.MountOptions, ",")))
	}
}

// layoutGPT places a disk's partitions as sgdisk would, around the
// partitions format keeps. Without a known size it places nothing.
func (b *planner) layoutGPT(d *Disk, g *GPT, ds *DiskState) (map[int]Placed, map[int]bool) {
	pl := map[int]Placed{}
	kept := map[int]bool{}
	if ds == nil || ds.Missing || ds.Size <= 0 {
		return pl, kept
	}
	geo, err := NewGeometry(ds.Size, ds.SectorSize)
	if err != nil {
		b.errorf(d.Path, "%s: %v", d.Device, err)
		return pl, kept
	}
	ex := b.existing(d)
	if ex != nil && ex.Signature != nil && ex.Signature.Type != "gpt" && b.m.Format {
		b.errorf(config.Key(d.Path, "device"), "%s holds %s, not a GPT: format will not overwrite it; use mode destroy,format,mount to wipe it first", d.Device, ex.Signature)
		return pl, kept
	}
	if ex != nil {
		for _, p := range ex.Partitions {
			geo.Use(p.Start, p.End)
		}
	}
	for _, pt := range g.Sorted {
		if ex != nil {
			if cur := ex.partition(pt.Index); cur != nil {
				pl[pt.Index] = Placed{cur.Start, cur.End}
				kept[pt.Index] = true
				continue
			}
		}
		x, err := geo.Place(pt.Start, pt.End, pt.Alignment)
		if err != nil {
			b.errorf(pt.Path, "partition %s does not fit on %s (%s): %v", pt.Key, d.Device, HumanBytes(ds.Size), err)
			continue
		}
		pl[pt.Index] = x
	}
	return pl, kept
}

// describeContent says in a few words what a content is.
func describeContent(c Content) string {
	switch x := c.(type) {
	case nil:
		return "(no content)"
	case *GPT:
		return fmt.Sprintf("gpt with %d partitions", len(x.Sorted))
	case *Table:
		return fmt.Sprintf("%s table with %d partitions", x.Format, len(x.Partitions))
	case *Filesystem:
		if x.Mountpoint != "" {
			return fmt.Sprintf("%s -> %s", x.Format, x.Mountpoint)
		}
		return x.Format + " (not mounted)"
	case *Btrfs:
		var s []string
		if x.Mountpoint != "" {
			s = append(s, "-> "+x.Mountpoint)
		}
		for _, sv := range x.SortedSubvolumes() {
			if sv.Mountpoint != "" {
				s = append(s, fmt.Sprintf("%s -> %s", sv.Name, sv.Mountpoint))
			} else {
				s = append(s, sv.Name)
			}
		}
		if n := len(x.Swap); n > 0 {
			s = append(s, fmt.Sprintf("%d swap files", n))
		}
		if len(s) == 0 {
			return "btrfs"
		}
		return "btrfs " + strings.Join(s, ", ")
	case *Swap:
		if x.RandomEncryption {
			return "swap (random encryption at boot)"
		}
		return "swap"
	case *LUKS:
		return fmt.Sprintf("luks %s > %s", x.Name, describeContent(x.Content))
	case *LVMPV:
		return "lvm pv of " + x.VG
	case *MDRaid:
		return "raid member of " + x.Name
	case *ZFS:
		return "zfs member of " + x.Pool
	case *BcachefsMember:
		return "bcachefs member of " + x.Filesystem
	}
	return c.Kind()
}

func (b *planner) hook(phase, obj, disk, name, script string, env map[string]string) {
	if script == "" {
		return
	}
	b.add(Op{Op: OpHook, Phase: phase, Object: obj, Disk: disk, Device: env["device"], Name: name, Script: script, Env: env,
		Summary: fmt.Sprintf("run %s of %s", name, obj), Argv: []string{"sh", "-c", script}})
}

func hookEnv(kind, name, device, format, mountpoint string) map[string]string {
	env := map[string]string{"type": kind}
	if name != "" {
		env["name"] = name
	}
	if device != "" {
		env["device"] = device
	}
	if format != "" {
		env["format"] = format
	}
	if mountpoint != "" {
		env["mountpoint"] = mountpoint
	}
	return env
}

func (b *planner) destroyPhase() {
	b.add(Op{Op: OpUnmountAll, Phase: PhaseDestroy, Object: b.l.Path, Mountpoint: b.o.Root,
		Summary: fmt.Sprintf("unmount everything at or below %s and swapoff swap files there", b.o.Root)})
	for _, k := range sortedKeys(b.l.Disks) {
		d := b.l.Disks[k]
		if !d.Destroy {
			continue
		}
		ds := b.state(d.Device)
		what := "whatever it holds"
		if ds != nil && !ds.Missing {
			what = ds.Describe()
			if ds.Empty() {
				what = "nothing (already empty)"
			}
		}
		b.add(Op{Op: OpDeactivate, Phase: PhaseDestroy, Object: d.Path, Disk: k, Device: d.Device,
			Summary: fmt.Sprintf("release %s: swapoff, unmount, close LUKS, deactivate LVM, stop md on it", d.Device)})
		b.add(Op{Op: OpWipe, Phase: PhaseDestroy, Object: d.Path, Disk: k, Device: d.Device, Destroys: true,
			Summary: fmt.Sprintf("DESTROY %s: wipe every signature and the partition table (%s)", d.Device, what)})
	}
}
