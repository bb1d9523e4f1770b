package disko

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/nivis/nivis/internal/config"
	"github.com/nivis/nivis/internal/exitcode"
)

// Operation kinds. Each is one step the executor knows how to do and undo
// nothing about: the plan is the whole truth of what will happen.
const (
	OpUnmountAll   = "unmount-all"   // unmount everything below the root, swapoff files there
	OpDeactivate   = "deactivate"    // swapoff/umount/close what sits on a disk
	OpWipe         = "wipe"          // wipefs every signature, zero the GPT areas
	OpHook         = "hook"          // a pre/post hook from the layout (sh -c)
	OpGPT          = "gpt"           // write the partition table, tell the kernel (BLKPG)
	OpHybridMBR    = "hybrid-mbr"    // sgdisk -h, sfdisk --label-nested dos
	OpParted       = "parted"        // legacy table through parted
	OpMkfs         = "mkfs"          // mkfs.<format>
	OpMkswap       = "mkswap"        // mkswap
	OpLuksFormat   = "luks-format"   // cryptsetup luksFormat
	OpLuksOpen     = "luks-open"     // cryptsetup open
	OpLuksAddKey   = "luks-add-key"  // cryptsetup luksAddKey
	OpLuksClose    = "luks-close"    // cryptsetup close
	OpPVCreate     = "pvcreate"      // lvm pvcreate
	OpVGCreate     = "vgcreate"      // lvm vgcreate
	OpLVCreate     = "lvcreate"      // lvm lvcreate
	OpVGActivate   = "vg-activate"   // lvm vgchange -a y
	OpVGDeactivate = "vg-deactivate" // lvm vgchange -a n
	OpMdadmCreate  = "mdadm-create"  // mdadm --create
	OpSubvolume    = "btrfs-subvolume"
	OpSwapfile     = "btrfs-swapfile"
	OpMount        = "mount"   // mount(2), creating the mountpoint
	OpUmount       = "umount"  // umount(2)
	OpSwapon       = "swapon"  // swapon(2)
	OpSwapoff      = "swapoff" // swapoff(2)
)

// Phases, in the order they run.
const (
	PhaseUnmount = "unmount"
	PhaseDestroy = "destroy"
	PhaseFormat  = "format"
	PhaseMount   = "mount"
)

// Op is one typed operation. Device is the layout's (symbolic) name for
// the device; the executor resolves it when the op runs, because many
// devices only exist once earlier ops have run.
type Op struct {
	Op       string `json:"op"`
	Phase    string `json:"phase"`
	Object   string `json:"object"`         // report path of the layout object
	Disk     string `json:"disk,omitempty"` // disk key, for the tree view
	Device   string `json:"device,omitempty"`
	Summary  string `json:"summary"`
	Destroys bool   `json:"destroys,omitempty"`
	// Skip is set when the current state shows the object is already
	// there: format leaves it alone. The executor checks again.
	Skip string `json:"skip,omitempty"`
	// Argv is the external command, with the symbolic device; empty for
	// operations done in Go (GPT, mount, swapon).
	Argv []string `json:"argv,omitempty"`

	Name       string            `json:"name,omitempty"`
	Format     string            `json:"format,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Members    []string          `json:"members,omitempty"`
	Mountpoint string            `json:"mountpoint,omitempty"`
	Options    []string          `json:"options,omitempty"`
	Size       string            `json:"size,omitempty"`
	Level      *int              `json:"level,omitempty"`
	Metadata   string            `json:"metadata,omitempty"`
	VG         string            `json:"vg,omitempty"`
	LVMType    string            `json:"lvmType,omitempty"`
	Pool       string            `json:"pool,omitempty"`
	Priority   *int              `json:"priority,omitempty"`
	Discard    string            `json:"discard,omitempty"`
	Subvolume  string            `json:"subvolume,omitempty"`
	FilePath   string            `json:"filePath,omitempty"`
	Script     string            `json:"script,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Partitions []PartSpec        `json:"partitions,omitempty"`
	Key        *KeySpec          `json:"key,omitempty"`
	Commands   [][]string        `json:"commands,omitempty"`
	// PartIndex is set on ops whose device is partition N of Disk.
	PartIndex int `json:"partIndex,omitempty"`
}

// PartSpec is one partition of a GPT op.
type PartSpec struct {
	Index      int    `json:"index"`
	Key        string `json:"key"`
	Device     string `json:"device"` // the partition as the layout names it
	Label      string `json:"label"`
	TypeGUID   string `json:"typeGUID"`
	UUID       string `json:"uuid,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Alignment  int    `json:"alignment,omitempty"`
	// StartSector and EndSector are filled when the disk size is known.
	StartSector uint64 `json:"startSector,omitempty"`
	EndSector   uint64 `json:"endSector,omitempty"`
}

// KeySpec is how cryptsetup gets its key.
type KeySpec struct {
	KeyFile          string   `json:"keyFile,omitempty"`
	PasswordFile     string   `json:"passwordFile,omitempty"`
	AskPassword      bool     `json:"askPassword,omitempty"`
	KeyFileSize      *int     `json:"keyFileSize,omitempty"`
	KeyFileOffset    *int     `json:"keyFileOffset,omitempty"`
	AllowDiscards    bool     `json:"allowDiscards,omitempty"`
	BypassWorkqueues bool     `json:"bypassWorkqueues,omitempty"`
	ExtraFormatArgs  []string `json:"extraFormatArgs,omitempty"`
	ExtraOpenArgs    []string `json:"extraOpenArgs,omitempty"`
	NewKeyFile       string   `json:"newKeyFile,omitempty"`
}

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
	// Placed partitions by disk key, for views and GPT ops.
	Placed map[string]map[int]Placed
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
	b.Placed = map[string]map[int]Placed{}
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
			b.Placed[k], b.kept[k] = pl, kept
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

func (b *planner) formatPhase() {
	for _, ref := range b.order {
		switch ref.Kind {
		case "disk":
			d := b.l.Disks[ref.Name]
			env := hookEnv("disk", d.Name, d.Device, "", "")
			b.hook(PhaseFormat, d.Path, ref.Name, "preCreateHook", d.Hooks.PreCreate, env)
			b.create(d.Content, ref.Name, d)
			b.hook(PhaseFormat, d.Path, ref.Name, "postCreateHook", d.Hooks.PostCreate, env)
		case "mdadm":
			md := b.l.MDADM[ref.Name]
			env := hookEnv("mdadm", md.Name, md.Device(), "", "")
			b.hook(PhaseFormat, md.Path, "", "preCreateHook", md.Hooks.PreCreate, env)
			var mem []string
			for _, c := range b.members[ref] {
				_, dev := c.Where()
				mem = append(mem, dev)
			}
			lvl := md.Level
			b.add(Op{Op: OpMdadmCreate, Phase: PhaseFormat, Object: md.Path, Device: md.Device(), Name: md.Name, Level: &lvl,
				Metadata: md.Metadata, Members: mem, Summary: fmt.Sprintf("create md array %s (raid%d of %d devices)", md.Device(), md.Level, len(mem))})
			b.create(md.Content, "", nil)
			b.hook(PhaseFormat, md.Path, "", "postCreateHook", md.Hooks.PostCreate, env)
		case "lvm_vg":
			vg := b.l.LVMVGs[ref.Name]
			env := hookEnv("lvm_vg", vg.Name, "", "", "")
			b.hook(PhaseFormat, vg.Path, "", "preCreateHook", vg.Hooks.PreCreate, env)
			var mem []string
			for _, c := range b.members[ref] {
				_, dev := c.Where()
				mem = append(mem, dev)
			}
			b.add(Op{Op: OpVGCreate, Phase: PhaseFormat, Object: vg.Path, Name: vg.Name, Members: mem,
				Summary: fmt.Sprintf("create volume group %s on %s", vg.Name, strings.Join(mem, " "))})
			lvs := vg.SortedLVs()
			for _, lv := range lvs {
				b.add(Op{Op: OpLVCreate, Phase: PhaseFormat, Object: lv.Path, Device: lv.Device, VG: vg.Name, Name: lv.Name,
					Size: lv.Size, LVMType: lv.LVMType, Pool: lv.Pool, Args: splitArgs(lv.ExtraArgs),
					Summary: fmt.Sprintf("create logical volume %s (%s)", lv.Device, lv.Size)})
			}
			for _, lv := range lvs {
				b.create(lv.Content, "", nil)
			}
			b.hook(PhaseFormat, vg.Path, "", "postCreateHook", vg.Hooks.PostCreate, env)
		}
	}
}

// partOf finds the state of the partition a content sits on, for skip
// predictions.
func (b *planner) partState(disk string, idx int) *PartState {
	d := b.l.Disks[disk]
	if d == nil || idx == 0 {
		return nil
	}
	ex := b.existing(d)
	if ex == nil || !b.kept[disk][idx] {
		return nil
	}
	return ex.partition(idx)
}

// create adds the format ops of content c (and everything inside it).
// disk and d are set while inside a disk, to tie ops to its tree.
func (b *planner) create(c Content, disk string, d *Disk) {
	var cur *Signature
	if d != nil {
		if ex := b.existing(d); ex != nil && !ex.Missing {
			cur = ex.Signature
		}
	}
	switch c.(type) {
	case *GPT, *Table:
		cur = nil // checked by layoutGPT and at execution
	}
	b.createIn(c, disk, d, 0, cur)
}

func (b *planner) createIn(c Content, disk string, d *Disk, idx int, cur *Signature) {
	if c == nil {
		return
	}
	p, dev := c.Where()
	h := c.hooks()
	env := hookEnv(c.Kind(), "", dev, "", "")
	switch x := c.(type) {
	case *Filesystem:
		env["format"], env["mountpoint"] = x.Format, x.Mountpoint
	case *LUKS:
		env["name"] = x.Name
	}
	b.hook(PhaseFormat, p, disk, "preCreateHook", h.PreCreate, env)
	defer b.hook(PhaseFormat, p, disk, "postCreateHook", h.PostCreate, env)
	skipIf := func(want string) string {
		if cur == nil {
			return ""
		}
		if want == "" || cur.Type == want {
			return fmt.Sprintf("%s is already there", cur.Type)
		}
		b.errorf(p, "%s holds %s, not %s: format will not overwrite it; use mode destroy,format,mount to start over", dev, cur, want)
		return ""
	}
	switch x := c.(type) {
	case *GPT:
		var specs []PartSpec
		for _, pt := range x.Sorted {
			var attrs uint64
			for _, a := range pt.Attributes {
				if a >= 0 && a < 64 {
					attrs |= 1 << uint(a)
				}
			}
			ps := PartSpec{Index: pt.Index, Key: pt.Key, Device: pt.Device, Label: pt.Label, TypeGUID: pt.TypeGUID, UUID: pt.UUID, Attributes: attrs,
				Start: pt.Start, End: pt.End, Alignment: pt.Alignment}
			if pl, ok := b.Placed[disk][pt.Index]; ok && d != nil {
				ps.StartSector, ps.EndSector = pl.Start, pl.End
			}
			specs = append(specs, ps)
		}
		op := Op{Op: OpGPT, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Partitions: specs,
			Summary: fmt.Sprintf("write a GPT with %s to %s and tell the kernel (BLKPG)", plural(len(specs), "partition"), dev)}
		if d != nil && len(b.kept[disk]) == len(x.Sorted) && len(x.Sorted) > 0 {
			op.Skip = "all partitions exist already"
		}
		b.add(op)
		var hybrid []string
		for _, pt := range x.Sorted {
			if pt.Hybrid != nil {
				hybrid = append(hybrid, fmt.Sprint(pt.Index))
			}
		}
		if len(hybrid) > 0 {
			spec := strings.Join(hybrid, ":")
			if !x.EfiGptPartitionFirst {
				spec += ":EE"
			}
			cmds := [][]string{{"sgdisk", "-h", spec, dev}}
			for _, pt := range x.Sorted {
				if pt.Hybrid == nil {
					continue
				}
				if pt.Hybrid.MBRPartitionType != "" {
					cmds = append(cmds, []string{"sfdisk", "--label-nested", "dos", "--part-type", dev, fmt.Sprint(pt.Index), pt.Hybrid.MBRPartitionType})
				}
				if pt.Hybrid.MBRBootableFlag {
					cmds = append(cmds, []string{"sfdisk", "--label-nested", "dos", "--activate", dev, fmt.Sprint(pt.Index)})
				}
			}
			b.add(Op{Op: OpHybridMBR, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Commands: cmds, Argv: []string{},
				Summary: fmt.Sprintf("write a hybrid MBR with partitions %s", spec)})
		}
		for _, pt := range x.Sorted {
			var sig *Signature
			if ps := b.partState(disk, pt.Index); ps != nil {
				sig = ps.Signature
			}
			b.createIn(pt.Content, disk, d, partRef(pt), sig)
		}
	case *Table:
		cmds := [][]string{{"parted", "-s", dev, "--", "mklabel", x.Format}}
		for _, tp := range x.Partitions {
			kind := tp.PartType
			if x.Format == "gpt" {
				kind = tp.Name
			}
			mk := []string{"parted", "-s", dev, "--", "mkpart", kind}
			if tp.FsType != "" {
				mk = append(mk, tp.FsType)
			}
			cmds = append(cmds, append(mk, tp.Start, tp.End))
			if tp.Bootable {
				cmds = append(cmds, []string{"parted", "-s", dev, "--", "set", fmt.Sprint(tp.Index), "boot", "on"})
			}
			for _, f := range tp.Flags {
				cmds = append(cmds, []string{"parted", "-s", dev, "--", "set", fmt.Sprint(tp.Index), f, "on"})
			}
		}
		b.add(Op{Op: OpParted, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, Commands: cmds, Argv: []string{}, Destroys: true,
			Summary: fmt.Sprintf("write a %s table with %d partitions to %s with parted", x.Format, len(x.Partitions), dev)})
		for _, tp := range x.Partitions {
			b.createIn(tp.Content, disk, d, 0, nil)
		}
	case *Filesystem:
		b.add(Op{Op: OpMkfs, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Format: x.Format, Args: x.ExtraArgs,
			Skip: skipIf(x.Format), Summary: fmt.Sprintf("format %s as %s", dev, x.Format)})
	case *Btrfs:
		b.add(Op{Op: OpMkfs, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Format: "btrfs", Args: x.ExtraArgs,
			Skip: skipIf("btrfs"), Summary: fmt.Sprintf("format %s as btrfs", dev)})
		for _, sv := range x.SortedSubvolumes() {
			senv := map[string]string{"type": "btrfs_subvol", "name": sv.Name, "device": dev}
			b.hook(PhaseFormat, sv.Path, disk, "preCreateHook", sv.Hooks.PreCreate, senv)
			b.add(Op{Op: OpSubvolume, Phase: PhaseFormat, Object: sv.Path, Disk: disk, Device: dev, PartIndex: idx, Subvolume: sv.Name, Args: sv.ExtraArgs,
				Summary: fmt.Sprintf("create subvolume %s (unless it exists)", sv.Name)})
			for _, k := range sortedKeys(sv.Swap) {
				sw := sv.Swap[k]
				b.add(Op{Op: OpSwapfile, Phase: PhaseFormat, Object: sw.Path, Disk: disk, Device: dev, PartIndex: idx, Subvolume: sv.Name, FilePath: sw.FilePath, Size: sw.Size,
					Summary: fmt.Sprintf("create swap file %s in subvolume %s (%s, unless it exists)", sw.FilePath, sv.Name, sw.Size)})
			}
			b.hook(PhaseFormat, sv.Path, disk, "postCreateHook", sv.Hooks.PostCreate, senv)
		}
		for _, k := range sortedKeys(x.Swap) {
			sw := x.Swap[k]
			b.add(Op{Op: OpSwapfile, Phase: PhaseFormat, Object: sw.Path, Disk: disk, Device: dev, PartIndex: idx, FilePath: sw.FilePath, Size: sw.Size,
				Summary: fmt.Sprintf("create swap file %s at the top of the filesystem (%s, unless it exists)", sw.FilePath, sw.Size)})
		}
	case *Swap:
		if x.RandomEncryption {
			return // the installed system makes it at every boot
		}
		b.add(Op{Op: OpMkswap, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Args: splitArgs(x.ExtraArgs),
			Skip: skipIf("swap"), Summary: fmt.Sprintf("format %s as swap", dev)})
	case *LUKS:
		key := luksKey(x)
		b.add(Op{Op: OpLuksFormat, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: key,
			Skip: skipIf("crypto_LUKS"), Summary: fmt.Sprintf("encrypt %s with LUKS", dev)})
		b.add(Op{Op: OpLuksOpen, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: key,
			Summary: fmt.Sprintf("open %s as %s (unless open)", dev, x.MapperDevice())})
		for _, f := range x.AdditionalKeyFiles {
			k2 := *key
			k2.NewKeyFile = f
			b.add(Op{Op: OpLuksAddKey, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: &k2,
				Summary: fmt.Sprintf("add key file %s to %s (only right after formatting)", f, dev)})
		}
		b.createIn(x.Content, disk, d, 0, nil)
	case *LVMPV:
		b.add(Op{Op: OpPVCreate, Phase: PhaseFormat, Object: p, Disk: disk, Device: dev, PartIndex: idx, VG: x.VG,
			Skip: skipIf("LVM2_member"), Summary: fmt.Sprintf("make %s an LVM physical volume for %s", dev, x.VG)})
	case *MDRaid, *ZFS, *BcachefsMember:
		// Members are used when their array, pool or filesystem is created.
	}
}

// partRef is the partition number ops use to find a partition by disk
// and number; 0 when the layout names the partition's device itself.
func partRef(pt *Partition) int {
	if pt.DefaultDevice {
		return pt.Index
	}
	return 0
}

// luksKey gathers how cryptsetup gets the key for x.
func luksKey(x *LUKS) *KeySpec {
	k := &KeySpec{KeyFile: x.SettingsKeyFile(), PasswordFile: x.PasswordFile, AskPassword: x.AskPassword,
		ExtraFormatArgs: splitArgs(x.ExtraFormatArgs), ExtraOpenArgs: splitArgs(x.ExtraOpenArgs)}
	if k.KeyFile == "" && k.PasswordFile == "" && x.KeyFile != "" {
		k.KeyFile = x.KeyFile // deprecated disko option, same meaning as settings.keyFile
	}
	if v, ok := x.Settings["keyFileSize"]; ok {
		if n, ok := toInt(v); ok {
			k.KeyFileSize = &n
		}
	}
	if v, ok := x.Settings["keyFileOffset"]; ok {
		if n, ok := toInt(v); ok {
			k.KeyFileOffset = &n
		}
	}
	k.AllowDiscards, _ = x.Settings["allowDiscards"].(bool)
	k.BypassWorkqueues, _ = x.Settings["bypassWorkqueues"].(bool)
	return k
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}

// mountEntry is one thing the mount phase mounts.
type mountEntry struct {
	obj, disk, device string
	partIndex         int
	fstype            string
	mountpoint        string
	options           []string
	hooks             Hooks
	kind, name        string
}

// swapEntry is one swap the mount phase activates.
type swapEntry struct {
	obj, disk, device string
	partIndex         int
	file              string // absolute path below the root, for swap files
	priority          *int
	discard           string
	options           []string
	hooks             Hooks
}

// collect gathers mounts, swaps, LUKS containers and VGs in device order.
func (b *planner) collect() (mounts []mountEntry, swaps []swapEntry, luks []Op, vgs []string) {
	var visit func(c Content, disk string, idx int)
	visit = func(c Content, disk string, idx int) {
		if c == nil {
			return
		}
		p, dev := c.Where()
		switch x := c.(type) {
		case *GPT:
			for _, pt := range x.Sorted {
				visit(pt.Content, disk, partRef(pt))
			}
		case *Table:
			for _, tp := range x.Partitions {
				visit(tp.Content, disk, 0)
			}
		case *Filesystem:
			if x.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: p, disk: disk, device: dev, partIndex: idx, fstype: x.Format, mountpoint: x.Mountpoint,
					options: x.MountOptions, hooks: x.Hooks, kind: "filesystem"})
			}
		case *Btrfs:
			if x.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: p, disk: disk, device: dev, partIndex: idx, fstype: "btrfs", mountpoint: x.Mountpoint,
					options: x.MountOptions, hooks: x.Hooks, kind: "btrfs"})
			}
			for _, sv := range x.SortedSubvolumes() {
				if sv.Mountpoint != "" {
					mounts = append(mounts, mountEntry{obj: sv.Path, disk: disk, device: dev, partIndex: idx, fstype: "btrfs", mountpoint: sv.Mountpoint,
						options: append(append([]string{}, sv.MountOptions...), "subvol="+sv.Name), hooks: sv.Hooks, kind: "btrfs_subvol", name: sv.Name})
				}
				for _, k := range sortedKeys(sv.Swap) {
					if sw := sv.Swap[k]; sw.Mountpoint != "" {
						swaps = append(swaps, swapEntry{obj: sw.Path, disk: disk, device: dev, file: sw.Mountpoint, priority: sw.Priority, discard: sw.DiscardPolicy, options: sw.Options})
					}
				}
			}
			for _, k := range sortedKeys(x.Swap) {
				if sw := x.Swap[k]; sw.Mountpoint != "" {
					swaps = append(swaps, swapEntry{obj: sw.Path, disk: disk, device: dev, file: sw.Mountpoint, priority: sw.Priority, discard: sw.DiscardPolicy, options: sw.Options})
				}
			}
		case *Swap:
			if !x.RandomEncryption {
				swaps = append(swaps, swapEntry{obj: p, disk: disk, device: dev, partIndex: idx, priority: x.Priority, discard: x.DiscardPolicy, options: x.MountOptions, hooks: x.Hooks})
			}
		case *LUKS:
			luks = append(luks, Op{Op: OpLuksOpen, Phase: PhaseMount, Object: p, Disk: disk, Device: dev, PartIndex: idx, Name: x.Name, Key: luksKey(x),
				Summary: fmt.Sprintf("open %s as %s (unless open)", dev, x.MapperDevice())})
			visit(x.Content, disk, 0)
		}
	}
	for _, ref := range b.order {
		switch ref.Kind {
		case "disk":
			visit(b.l.Disks[ref.Name].Content, ref.Name, 0)
		case "mdadm":
			visit(b.l.MDADM[ref.Name].Content, "", 0)
		case "lvm_vg":
			vg := b.l.LVMVGs[ref.Name]
			vgs = append(vgs, vg.Name)
			for _, lv := range vg.SortedLVs() {
				visit(lv.Content, "", 0)
			}
		case "nodev":
			n := b.l.Nodevs[ref.Name]
			if n.Mountpoint != "" {
				mounts = append(mounts, mountEntry{obj: n.Path, device: n.Device, fstype: n.FSType, mountpoint: n.Mountpoint, options: n.MountOptions, hooks: n.Hooks, kind: "nodev"})
			}
		}
	}
	stableSort(mounts, func(a, c mountEntry) bool { return mountpointLess(a.mountpoint, c.mountpoint) })
	return mounts, swaps, luks, vgs
}

func (b *planner) target(mp string) string { return path.Join(b.o.Root, mp) }

// lvNames lists the logical volumes of the VG named vg.
func (b *planner) lvNames(vg string) []string {
	var out []string
	for _, k := range sortedKeys(b.l.LVMVGs) {
		if v := b.l.LVMVGs[k]; v.Name == vg {
			for _, lv := range v.SortedLVs() {
				out = append(out, lv.Name)
			}
		}
	}
	return out
}

func (b *planner) mountPhase() {
	mounts, swaps, luks, vgs := b.collect()
	for _, op := range luks {
		b.add(op)
	}
	for _, vg := range vgs {
		b.add(Op{Op: OpVGActivate, Phase: PhaseMount, Object: b.l.Path, VG: vg, Members: b.lvNames(vg), Summary: "activate the logical volumes of " + vg})
	}
	for _, m := range mounts {
		env := hookEnv(m.kind, m.name, m.device, m.fstype, m.mountpoint)
		b.hook(PhaseMount, m.obj, m.disk, "preMountHook", m.hooks.PreMount, env)
		b.add(Op{Op: OpMount, Phase: PhaseMount, Object: m.obj, Disk: m.disk, Device: m.device, PartIndex: m.partIndex, Format: m.fstype,
			Mountpoint: m.mountpoint, Options: m.options,
			Summary: fmt.Sprintf("mount %s on %s (%s, %s)", m.device, b.target(m.mountpoint), m.fstype, strings.Join(m.options, ","))})
		b.hook(PhaseMount, m.obj, m.disk, "postMountHook", m.hooks.PostMount, env)
	}
	for _, s := range swaps {
		env := hookEnv("swap", "", s.device, "", "")
		b.hook(PhaseMount, s.obj, s.disk, "preMountHook", s.hooks.PreMount, env)
		what := s.device
		if s.file != "" {
			what = b.target(s.file)
		}
		b.add(Op{Op: OpSwapon, Phase: PhaseMount, Object: s.obj, Disk: s.disk, Device: s.device, PartIndex: s.partIndex, FilePath: s.file,
			Priority: s.priority, Discard: s.discard, Options: s.options, Summary: "swapon " + what})
		b.hook(PhaseMount, s.obj, s.disk, "postMountHook", s.hooks.PostMount, env)
	}
}

func (b *planner) unmountPhase() {
	mounts, swaps, luks, vgs := b.collect()
	for i := len(swaps) - 1; i >= 0; i-- {
		s := swaps[i]
		what := s.device
		if s.file != "" {
			what = b.target(s.file)
		}
		env := hookEnv("swap", "", s.device, "", "")
		b.hook(PhaseUnmount, s.obj, s.disk, "preUnmountHook", s.hooks.PreUnmount, env)
		b.add(Op{Op: OpSwapoff, Phase: PhaseUnmount, Object: s.obj, Disk: s.disk, Device: s.device, PartIndex: s.partIndex, FilePath: s.file, Summary: "swapoff " + what})
		b.hook(PhaseUnmount, s.obj, s.disk, "postUnmountHook", s.hooks.PostUnmount, env)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		env := hookEnv(m.kind, m.name, m.device, m.fstype, m.mountpoint)
		b.hook(PhaseUnmount, m.obj, m.disk, "preUnmountHook", m.hooks.PreUnmount, env)
		b.add(Op{Op: OpUmount, Phase: PhaseUnmount, Object: m.obj, Disk: m.disk, Device: m.device, PartIndex: m.partIndex, Mountpoint: m.mountpoint,
			Summary: "unmount " + b.target(m.mountpoint)})
		b.hook(PhaseUnmount, m.obj, m.disk, "postUnmountHook", m.hooks.PostUnmount, env)
	}
	for i := len(vgs) - 1; i >= 0; i-- {
		b.add(Op{Op: OpVGDeactivate, Phase: PhaseUnmount, Object: b.l.Path, VG: vgs[i], Members: b.lvNames(vgs[i]), Summary: "deactivate the logical volumes of " + vgs[i]})
	}
	for i := len(luks) - 1; i >= 0; i-- {
		op := luks[i]
		b.add(Op{Op: OpLuksClose, Phase: PhaseUnmount, Object: op.Object, Disk: op.Disk, Device: op.Device, Name: op.Name, Summary: "close /dev/mapper/" + op.Name})
	}
}
