package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/disko"
	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/exitcode"
)

// Execute runs the plan's operations in order. Every step is logged
// (Ignition style: started, finished or failed, with exact commands), and
// a failure stops the run with an error that says which step failed. The
// executor re-checks what exists, so format leaves existing objects alone
// even when the plan was made earlier.
func Execute(ctx context.Context, p *disko.Plan, o Options) (*disko.Result, error) {
	if o.Root == "" {
		o.Root = p.Root
	}
	if o.Root == "" {
		o.Root = "/mnt"
	}
	if o.Runner == nil {
		o.Runner = command.Exec{Log: o.Log}
	}
	x := &executor{ctx: ctx, p: p, o: o, res: &Resolver{Wait: o.UdevWait}, disks: map[string]string{},
		luksFormatted: map[string]bool{}, btrfsTmp: map[string]string{}, result: &disko.Result{Devices: map[string]string{}}}
	if p.Mode.Destroy && filepath.Clean(o.Root) == "/" {
		return nil, exitcode.Errorf(exitcode.Usage, "refusing to destroy with mountpoints under /: pass --root (default /mnt)")
	}
	if o.DryRun {
		for i, op := range p.Ops {
			x.event(i, op, "skipped", "dry run")
			o.logf("[dry-run] %d. %s", i+1, op.Summary)
			for _, c := range append([][]string{op.Argv}, op.Commands...) {
				if len(c) > 0 {
					o.logf("[dry-run]    $ %s", command.Quote(c))
				}
			}
		}
		x.result.Skipped = len(p.Ops)
		return x.result, nil
	}
	if os.Geteuid() != 0 {
		return nil, exitcode.Errorf(exitcode.Precondition, "changing disks needs root: run nivis disko as root (or with --dry-run to see the plan)")
	}
	defer x.cleanup()
	if err := x.resolveDisks(); err != nil {
		return x.result, err
	}
	for i := range p.Ops {
		op := &p.Ops[i]
		if err := ctx.Err(); err != nil {
			return x.result, exitcode.Wrap(exitcode.Change, err)
		}
		x.event(i, *op, "started", "")
		o.logf("[started]  %d/%d %s", i+1, len(p.Ops), op.Summary)
		skip, err := x.do(op)
		if err == nil && skip == "" {
			x.settle(op)
		}
		if err != nil {
			o.logf("[failed]   %d/%d %s: %v", i+1, len(p.Ops), op.Summary, err)
			x.event(i, *op, "failed", err.Error())
			code := exitcode.Change
			if i == 0 || x.result.Done == 0 {
				code = exitcode.Precondition
			}
			return x.result, exitcode.Wrap(code, fmt.Errorf("step %d (%s, %s): %w", i+1, op.Op, op.Object, err))
		}
		if skip != "" {
			x.result.Skipped++
			o.logf("[skipped]  %d/%d %s: %s", i+1, len(p.Ops), op.Summary, skip)
			x.event(i, *op, "skipped", skip)
			continue
		}
		x.result.Done++
		if op.Op != disko.OpHook {
			x.result.Changed = append(x.result.Changed, fmt.Sprintf("%d %s %s", i+1, op.Op, op.Object))
		}
		o.logf("[finished] %d/%d %s", i+1, len(p.Ops), op.Summary)
		x.event(i, *op, "done", "")
	}
	return x.result, nil
}

type executor struct {
	ctx           context.Context
	p             *disko.Plan
	o             Options
	res           *Resolver
	disks         map[string]string // disk key -> node
	luksFormatted map[string]bool
	btrfsTmp      map[string]string // node -> temporary mount of the top subvolume
	result        *disko.Result
}

func (x *executor) event(i int, op disko.Op, status, detail string) {
	if x.o.Event != nil {
		x.o.Event(disko.Event{Index: i + 1, Total: len(x.p.Ops), Op: op.Op, Phase: op.Phase, Summary: op.Summary, Status: status, Detail: detail})
	}
}

// resolveDisks finds every disk and refuses the running system's root
// disk unless allowed.
func (x *executor) resolveDisks() error {
	writes := map[string]bool{}
	for _, op := range x.p.Ops {
		if op.Disk != "" && (op.Phase == disko.PhaseDestroy || op.Phase == disko.PhaseFormat) {
			writes[op.Disk] = true
		}
	}
	if err := x.res.refresh(); err != nil {
		return exitcode.Wrap(exitcode.Precondition, err)
	}
	roots := rootDisks(x.res.devs)
	for _, d := range x.p.Disks {
		b, err := x.res.Find(x.ctx, d.Device)
		if err != nil {
			if writes[d.Key] {
				return exitcode.Wrap(exitcode.Precondition, fmt.Errorf("disk %s: %w", d.Key, err))
			}
			continue
		}
		whole := b
		if b.Disk != "" {
			whole = x.res.devs[b.Disk]
		}
		if writes[d.Key] && whole != nil && roots[whole.Name] && !x.o.AllowRootDisk {
			return exitcode.Wrap(exitcode.Precondition, fmt.Errorf("%w: %s is %s", disko.ErrRootDisk, d.Device, b.Node()))
		}
		node, err := ensureNode(b)
		if err != nil {
			return exitcode.Wrap(exitcode.Precondition, err)
		}
		x.disks[d.Key] = node
		x.result.Devices[d.Device] = node
	}
	return nil
}

// settle waits, boundedly, for udev to finish with the events an op
// caused where udev runs: closing a disk written to makes udev re-read its
// partition table, and names like /dev/md/x or /dev/disk/by-* come from
// udev there.
func (x *executor) settle(op *disko.Op) {
	switch op.Op {
	case disko.OpWipe, disko.OpGPT, disko.OpHybridMBR, disko.OpParted, disko.OpMdadmCreate, disko.OpLuksOpen, disko.OpLVCreate, disko.OpVGActivate, disko.OpMkfs, disko.OpMkswap, disko.OpLuksFormat, disko.OpPVCreate:
	default:
		return
	}
	if !udevRunning() {
		return
	}
	if _, ok := command.Find("udevadm"); !ok {
		return
	}
	timeout := x.o.UdevWait
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	switch op.Op {
	case disko.OpMkfs, disko.OpMkswap, disko.OpLuksFormat, disko.OpPVCreate, disko.OpMdadmCreate:
		// udev's watch does not always see a new signature: ask it to look,
		// so that its /dev/disk/by-uuid links and database are right.
		var nodes []string
		for _, d := range append([]string{op.Device}, op.Members...) {
			if n := x.result.Devices[d]; n != "" {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) > 0 {
			if err := x.run(append([]string{"udevadm", "trigger", "--action=change"}, nodes...), nil, nil); err != nil {
				x.o.logf("warning: udevadm trigger: %v", err)
			}
		}
	}
	if err := x.run([]string{"udevadm", "settle", fmt.Sprintf("--timeout=%d", int(timeout.Seconds()))}, nil, nil); err != nil {
		x.o.logf("warning: udev did not settle in %s: %v", timeout, err)
	}
}

func (x *executor) cleanup() {
	for node, dir := range x.btrfsTmp {
		if err := unix.Unmount(dir, 0); err != nil {
			x.o.logf("warning: unmount temporary %s: %v", dir, err)
			continue
		}
		os.Remove(dir)
		delete(x.btrfsTmp, node)
	}
}

func (x *executor) run(argv []string, stdin []byte, env []string) error {
	_, err := x.o.Runner.Run(x.ctx, command.Command{Argv: argv, Stdin: stdin, Env: env})
	return err
}

// exists runs a query command and reports whether it succeeded.
func (x *executor) exists(argv ...string) bool {
	_, err := x.o.Runner.Run(x.ctx, command.Command{Argv: argv})
	return err == nil
}

// dev resolves the device an op acts on.
func (x *executor) dev(op *disko.Op) (string, error) {
	if op.Disk != "" {
		disk := x.disks[op.Disk]
		if disk == "" {
			return "", fmt.Errorf("disk %s was not found", op.Disk)
		}
		if op.PartIndex > 0 {
			n, err := x.res.PartitionOf(x.ctx, disk, op.PartIndex)
			if err == nil {
				x.result.Devices[op.Device] = n
			}
			return n, err
		}
		for _, d := range x.p.Disks {
			if d.Key == op.Disk && d.Device == op.Device {
				return disk, nil
			}
		}
	}
	n, err := x.res.Resolve(x.ctx, op.Device)
	if err == nil {
		x.result.Devices[op.Device] = n
	}
	return n, err
}

func probeNode(node string) (*disko.Signature, error) {
	f, err := os.Open(node)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, _, err := blockSize(f)
	if err != nil {
		return nil, err
	}
	return disko.Probe(f, size)
}

// do runs one op; a non-empty string means it was left alone, and why.
func (x *executor) do(op *disko.Op) (string, error) {
	switch op.Op {
	case disko.OpUnmountAll:
		return x.unmountAll(op.Mountpoint)
	case disko.OpDeactivate:
		return x.deactivate(op)
	case disko.OpWipe:
		return "", x.wipe(op)
	case disko.OpHook:
		return "", x.hook(op)
	case disko.OpGPT:
		return x.gpt(op)
	case disko.OpHybridMBR, disko.OpParted:
		node, err := x.dev(op)
		if err != nil {
			return "", err
		}
		for _, c := range op.Commands {
			argv := make([]string, len(c))
			for i, a := range c {
				if a == op.Device {
					a = node
				}
				argv[i] = a
			}
			if err := x.run(argv, nil, nil); err != nil {
				return "", err
			}
		}
		return "", nil
	case disko.OpMkfs, disko.OpMkswap, disko.OpPVCreate:
		return x.makeSignature(op)
	case disko.OpSubvolume:
		return x.subvolume(op)
	case disko.OpSwapfile:
		return x.swapfile(op)
	case disko.OpLuksFormat:
		node, err := x.dev(op)
		if err != nil {
			return "", err
		}
		if sig, err := probeNode(node); err != nil {
			return "", err
		} else if sig != nil {
			if sig.Type == "crypto_LUKS" {
				return "already a LUKS container", nil
			}
			return "", fmt.Errorf("%s holds %s, not LUKS: format does not overwrite it; use mode destroy,format,mount to start over", node, sig)
		}
		key, err := x.key(op.Key)
		if err != nil {
			return "", err
		}
		if err := x.run(op.ToolArgv(node), key, nil); err != nil {
			return "", err
		}
		x.luksFormatted[op.Name] = true
		return "", nil
	case disko.OpLuksOpen:
		if x.dmExists(op.Name) {
			return "/dev/mapper/" + op.Name + " is open", nil
		}
		node, err := x.dev(op)
		if err != nil {
			return "", err
		}
		key, err := x.key(op.Key)
		if err != nil {
			return "", err
		}
		return "", x.run(op.ToolArgv(node), key, nil)
	case disko.OpLuksAddKey:
		if !x.luksFormatted[op.Name] {
			return "the container existed before this run", nil
		}
		node, err := x.dev(op)
		if err != nil {
			return "", err
		}
		key, err := x.key(op.Key)
		if err != nil {
			return "", err
		}
		return "", x.run(op.ToolArgv(node), key, nil)
	case disko.OpLuksClose:
		if !x.dmExists(op.Name) {
			return "not open", nil
		}
		return "", x.run(op.ToolArgv(""), nil, nil)
	case disko.OpVGCreate:
		o := *op
		o.Members = nil
		for _, m := range op.Members {
			n, err := x.member(m)
			if err != nil {
				return "", err
			}
			o.Members = append(o.Members, n)
		}
		if x.exists("lvm", "vgs", op.Name) {
			// It exists: it must be this layout's, on these very PVs.
			for _, n := range o.Members {
				if vg, err := x.pvVG(n); err != nil || vg != op.Name {
					return "", fmt.Errorf("a volume group %s exists already, but %s is not in it (it is in %q): an old or foreign VG has this name; remove it (lvm vgremove %s) or wipe its disks, then run again", op.Name, n, vg, op.Name)
				}
			}
			return "volume group exists", nil
		}
		return "", x.run(o.ToolArgv(""), nil, nil)
	case disko.OpLVCreate:
		if x.exists("lvm", "lvdisplay", op.VG+"/"+op.Name) {
			return "logical volume exists", nil
		}
		return "", x.run(op.ToolArgv(""), nil, nil)
	case disko.OpVGActivate:
		if x.lvsActive(op.VG, op.Members) == len(op.Members) && len(op.Members) > 0 {
			return "its logical volumes are active", nil
		}
		return "", x.run(op.ToolArgv(""), nil, nil)
	case disko.OpVGDeactivate:
		if x.lvsActive(op.VG, op.Members) == 0 {
			return "its logical volumes are not active", nil
		}
		return "", x.run(op.ToolArgv(""), nil, nil)
	case disko.OpMdadmCreate:
		return x.mdadmCreate(op)
	case disko.OpMount:
		return x.mount(op)
	case disko.OpUmount:
		return x.umount(op)
	case disko.OpSwapon:
		return x.swapon(op)
	case disko.OpSwapoff:
		return x.swapoff(op)
	}
	return "", fmt.Errorf("unknown operation %q", op.Op)
}

// pvVG asks LVM which VG the PV on node belongs to ("" for none), in
// JSON: the one place the agent reads a tool's report, never its prose.
func (x *executor) pvVG(node string) (string, error) {
	out, err := x.o.Runner.Run(x.ctx, command.Command{Argv: []string{"lvm", "pvs", "--reportformat", "json", "-o", "vg_name", node}})
	if err != nil {
		return "", err
	}
	var rep struct {
		Report []struct {
			PV []struct {
				VG string `json:"vg_name"`
			} `json:"pv"`
		} `json:"report"`
	}
	if i := strings.IndexByte(string(out), '{'); i >= 0 {
		out = out[i:] // warnings come first on the same stream
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Report) == 0 || len(rep.Report[0].PV) == 0 {
		return "", fmt.Errorf("lvm pvs %s: unexpected report: %s", node, out)
	}
	return rep.Report[0].PV[0].VG, nil
}

// lvsActive counts the VG's logical volumes that device-mapper has.
func (x *executor) lvsActive(vg string, lvs []string) int {
	_ = x.res.refresh()
	n := 0
	for _, lv := range lvs {
		dm := strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
		for _, b := range x.res.devs {
			if b.DMName == dm {
				n++
				break
			}
		}
	}
	return n
}

// member resolves a member of a VG or array: the node an earlier op of
// this run found for it (by disk and partition number), else by name.
func (x *executor) member(name string) (string, error) {
	if n := x.result.Devices[name]; n != "" {
		return n, nil
	}
	n, err := x.res.Resolve(x.ctx, name)
	if err == nil {
		x.result.Devices[name] = n
	}
	return n, err
}

// key returns what goes on cryptsetup's stdin, if anything.
func (x *executor) key(k *disko.KeySpec) ([]byte, error) {
	switch {
	case k == nil || k.KeyFile != "":
		return nil, nil
	case k.PasswordFile != "":
		b, err := os.ReadFile(k.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read LUKS password file: %w", err)
		}
		return []byte(strings.TrimRight(string(b), "\n")), nil
	case k.AskPassword:
		if x.o.Password == "" {
			return nil, fmt.Errorf("this LUKS container needs a password (askPassword): give it with --password-file or set passwordFile or settings.keyFile")
		}
		return []byte(x.o.Password.Reveal()), nil
	}
	return nil, nil
}

func (x *executor) dmExists(name string) bool {
	_ = x.res.refresh()
	for _, b := range x.res.devs {
		if b.DMName == name {
			return true
		}
	}
	return false
}

// unmountAll unmounts everything at or below root, deepest first, after
// turning off swap files that live there.
func (x *executor) unmountAll(root string) (string, error) {
	root = filepath.Clean(root)
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	under := func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	swaps, err := readSwaps()
	if err != nil {
		return "", err
	}
	n := 0
	for _, s := range swaps {
		if !s.IsDev && under(s.Path) {
			if err := swapoff(s.Path); err != nil {
				return "", fmt.Errorf("swapoff %s: %w", s.Path, err)
			}
			x.o.logf("swapoff %s", s.Path)
			n++
		}
	}
	mounts, err := readMounts()
	if err != nil {
		return "", err
	}
	var targets []string
	for _, m := range mounts {
		if under(m.Mountpoint) {
			targets = append(targets, m.Mountpoint)
		}
	}
	if err := x.unmountList(targets); err != nil {
		return "", err
	}
	if n+len(targets) == 0 {
		return "nothing mounted below " + root, nil
	}
	return "", nil
}

// unmountList unmounts mountpoints given in mount order, last first.
func (x *executor) unmountList(targets []string) error {
	for i := len(targets) - 1; i >= 0; i-- {
		t := targets[i]
		if err := unix.Unmount(t, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				continue // already gone (a parent took it along)
			}
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("umount %s: busy: something still uses it (see fuser -vm %s)", t, t)
			}
			return fmt.Errorf("umount %s: %w", t, err)
		}
		x.o.logf("umount %s", t)
	}
	return nil
}

// deactivate releases everything built on a disk: swap on it, mounts of
// it (and anything mounted inside those), then LUKS, LVM and md holders,
// deepest first.
func (x *executor) deactivate(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	if err := x.res.refresh(); err != nil {
		return "", err
	}
	n, err := devOf(node)
	if err != nil {
		return "", err
	}
	b := byDevNum(x.res.devs, n)
	if b == nil {
		return "", fmt.Errorf("%s is not in sysfs", node)
	}
	devs := tree(x.res.devs, b.Name)
	set := map[uint64]bool{}
	for _, d := range devs {
		set[d.devNum()] = true
	}
	mounts, err := readMounts()
	if err != nil {
		return "", err
	}
	mountDev := func(m mountInfo) uint64 {
		if m.Major == 0 && strings.HasPrefix(m.Source, "/dev/") {
			if d, err := devOf(m.Source); err == nil {
				return d
			}
		}
		return unix.Mkdev(m.Major, m.Minor)
	}
	anon := map[uint64]bool{} // filesystem device numbers on the disk (btrfs has anonymous ones)
	var roots []string
	for _, m := range mounts {
		if set[mountDev(m)] {
			anon[unix.Mkdev(m.Major, m.Minor)] = true
			roots = append(roots, m.Mountpoint)
		}
	}
	did := 0
	swaps, err := readSwaps()
	if err != nil {
		return "", err
	}
	for _, s := range swaps {
		if (s.IsDev && set[s.Dev]) || (!s.IsDev && anon[s.Dev]) {
			if err := swapoff(s.Path); err != nil {
				return "", fmt.Errorf("swapoff %s: %w", s.Path, err)
			}
			x.o.logf("swapoff %s", s.Path)
			did++
		}
	}
	var targets []string
	for _, m := range mounts {
		for _, r := range roots {
			if m.Mountpoint == r || strings.HasPrefix(m.Mountpoint, strings.TrimSuffix(r, "/")+"/") {
				targets = append(targets, m.Mountpoint)
				break
			}
		}
	}
	if err := x.unmountList(targets); err != nil {
		return "", err
	}
	did += len(targets)
	vgsDone := map[string]bool{}
	for i := len(devs) - 1; i >= 0; i-- {
		d := devs[i]
		if d.Name == b.Name || d.Disk == b.Name {
			continue
		}
		switch {
		case strings.HasPrefix(d.DMUUID, "CRYPT-"):
			if err := x.run([]string{"cryptsetup", "close", d.DMName}, nil, nil); err != nil {
				return "", err
			}
		case strings.HasPrefix(d.DMUUID, "LVM-"):
			vg := dmVG(d.DMName)
			if vgsDone[vg] {
				continue
			}
			vgsDone[vg] = true
			if err := x.run([]string{"lvm", "vgchange", "-a", "n", vg}, nil, nil); err != nil {
				return "", err
			}
		case d.DMName != "":
			if err := x.run([]string{"dmsetup", "remove", d.DMName}, nil, nil); err != nil {
				return "", err
			}
		case strings.HasPrefix(d.Name, "md"):
			// A stopped array can linger in sysfs for a moment; only a
			// running (or assembling) one needs stopping.
			state := readTrim(filepath.Join(sysfsRoot, d.Name, "md", "array_state"))
			if state == "" || state == "clear" {
				continue
			}
			node, err := ensureNode(d)
			if err != nil {
				return "", err
			}
			if err := x.run([]string{"mdadm", "--stop", node}, nil, nil); err != nil {
				return "", err
			}
		default:
			continue
		}
		did++
	}
	if did == 0 {
		return "nothing on it was in use", nil
	}
	return "", nil
}

// dmVG returns the volume group of an LVM device-mapper name: VG-LV with
// dashes inside names doubled.
func dmVG(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			if i+1 < len(name) && name[i+1] == '-' {
				i++
				continue
			}
			return strings.ReplaceAll(name[:i], "--", "-")
		}
	}
	return name
}

// wipe erases every signature on the disk and its partitions. Partitions
// that are on disk but unknown to the kernel are announced first, so
// that the filesystems inside them are wiped too and cannot come back
// when the same table is written again.
func (x *executor) wipe(op *disko.Op) error {
	node, err := x.dev(op)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, ss, err := blockSize(f)
	if err != nil {
		return err
	}
	if t, err := gpt.Read(f, int(ss), int(ss)); err == nil {
		var want []kpart
		for _, p := range t.Partitions {
			if p.Type != gpt.Unused && p.End >= p.Start && int64(p.End+1)*ss <= size {
				want = append(want, kpart{Index: p.Index, Start: int64(p.Start) * ss, Length: int64(p.End-p.Start+1) * ss})
			}
		}
		if err := syncKernelPartitions(f, want, x.o.logf); err != nil {
			return err
		}
	}
	if err := x.res.refresh(); err != nil {
		return err
	}
	d, _ := devOf(node)
	disk := byDevNum(x.res.devs, d)
	if disk != nil {
		for _, k := range sortedKeys(x.res.devs) {
			if p := x.res.devs[k]; p.Disk == disk.Name {
				pn, err := ensureNode(p)
				if err != nil {
					return err
				}
				if err := x.run([]string{"wipefs", "-a", "-f", pn}, nil, nil); err != nil {
					return err
				}
			}
		}
	}
	if err := x.run(op.ToolArgv(node), nil, nil); err != nil {
		return err
	}
	if err := zeroEnds(f, size); err != nil {
		return fmt.Errorf("zero the partition table areas of %s: %w", node, err)
	}
	if err := syncKernelPartitions(f, nil, x.o.logf); err != nil {
		return err
	}
	return f.Sync()
}

// zeroEnds zeroes the first and last MiB: MBR, both GPTs, md 1.0 and 0.90
// superblocks.
func zeroEnds(f *os.File, size int64) error {
	n := int64(1 << 20)
	if size < 2*n {
		n = size / 2
	}
	zero := make([]byte, n)
	if _, err := f.WriteAt(zero, 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(zero, size-n); err != nil {
		return err
	}
	return f.Sync()
}

func (x *executor) hook(op *disko.Op) error {
	env := []string{"rootMountPoint=" + x.o.Root}
	for _, k := range sortedKeys(op.Env) {
		v := op.Env[k]
		if k == "device" && v != "" {
			if n, err := x.dev(op); err == nil {
				v = n
			}
		}
		env = append(env, k+"="+v)
	}
	shell := "sh"
	if _, ok := command.Find("bash"); ok {
		shell = "bash" // disko's hooks are bash snippets
	}
	return x.run([]string{shell, "-c", op.Script}, nil, env)
}

// gpt writes the partition table: partitions that exist are kept (their
// name, type and attributes updated if they differ), missing ones are
// placed like sgdisk would. Then the kernel is told with BLKPG.
func (x *executor) gpt(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, ss, err := blockSize(f)
	if err != nil {
		return "", err
	}
	geo, err := disko.NewGeometry(size, ss)
	if err != nil {
		return "", fmt.Errorf("%s: %w", node, err)
	}
	table, err := gpt.Read(f, int(ss), int(ss))
	changed := false
	if err != nil {
		sig, perr := disko.Probe(f, size)
		if perr != nil {
			return "", perr
		}
		if sig != nil {
			return "", fmt.Errorf("%s holds %s, not a GPT: format does not overwrite it; use mode destroy,format,mount to wipe it first", node, sig)
		}
		table = &gpt.Table{LogicalSectorSize: int(ss), PhysicalSectorSize: int(ss), ProtectiveMBR: true}
		changed = true
	}
	byIndex := map[int]*gpt.Partition{}
	for _, p := range table.Partitions {
		byIndex[p.Index] = p
		geo.Use(p.Start, p.End)
	}
	var notes []string
	for _, s := range op.Partitions {
		if cur := byIndex[s.Index]; cur != nil {
			if cur.Name != s.Label || !strings.EqualFold(string(cur.Type), s.TypeGUID) || cur.Attributes != s.Attributes ||
				(s.UUID != "" && !strings.EqualFold(cur.GUID, s.UUID)) {
				notes = append(notes, fmt.Sprintf("partition %d: name %q type %s -> %q %s", s.Index, cur.Name, cur.Type, s.Label, s.TypeGUID))
				cur.Name, cur.Type, cur.Attributes = s.Label, gpt.Type(s.TypeGUID), s.Attributes
				if s.UUID != "" {
					cur.GUID = strings.ToUpper(s.UUID)
				}
				changed = true
			}
			continue
		}
		pl, err := geo.Place(s.Start, s.End, s.Alignment)
		if err != nil {
			return "", fmt.Errorf("partition %d (%s) does not fit on %s (%s): %w", s.Index, s.Key, node, disko.HumanBytes(size), err)
		}
		if s.EndSector != 0 && (pl.Start != s.StartSector || pl.End != s.EndSector) {
			return "", fmt.Errorf("partition %d (%s) would land on sectors %d..%d, the plan said %d..%d: the disk changed since the plan was made; plan again",
				s.Index, s.Key, pl.Start, pl.End, s.StartSector, s.EndSector)
		}
		p := &gpt.Partition{Index: s.Index, Start: pl.Start, End: pl.End, Type: gpt.Type(s.TypeGUID), Name: s.Label,
			GUID: strings.ToUpper(s.UUID), Attributes: s.Attributes}
		table.Partitions = append(table.Partitions, p)
		byIndex[s.Index] = p
		changed = true
	}
	for _, n := range notes {
		x.o.logf("%s", n)
	}
	sort.Slice(table.Partitions, func(i, j int) bool { return table.Partitions[i].Index < table.Partitions[j].Index })
	if changed {
		if err := table.Write(f, size); err != nil {
			return "", fmt.Errorf("write GPT to %s: %w", node, err)
		}
		if err := f.Sync(); err != nil {
			return "", err
		}
		x.o.logf("wrote GPT to %s: %d partitions", node, len(table.Partitions))
	}
	var want []kpart
	for _, p := range table.Partitions {
		want = append(want, kpart{Index: p.Index, Start: int64(p.Start) * ss, Length: int64(p.End-p.Start+1) * ss})
	}
	if err := syncKernelPartitions(f, want, x.o.logf); err != nil {
		return "", err
	}
	for _, s := range op.Partitions {
		pn, err := x.res.PartitionOf(x.ctx, node, s.Index)
		if err != nil {
			return "", fmt.Errorf("partition %d of %s did not appear: %w", s.Index, node, err)
		}
		if s.Device != "" {
			x.result.Devices[s.Device] = pn
		}
	}
	if !changed {
		return "the partition table already matches", nil
	}
	return "", nil
}

// makeSignature runs mkfs, mkswap or pvcreate unless the device already
// holds what it would make.
func (x *executor) makeSignature(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	want := op.Format
	switch op.Op {
	case disko.OpMkswap:
		want = "swap"
	case disko.OpPVCreate:
		want = "LVM2_member"
	case disko.OpMkfs:
		if want == "fat" || want == "msdos" {
			want = "vfat"
		}
	}
	sig, err := probeNode(node)
	if err != nil {
		return "", err
	}
	if sig != nil {
		if sig.Type == want {
			return fmt.Sprintf("%s already holds %s", node, sig), nil
		}
		return "", fmt.Errorf("%s holds %s, not %s: format does not overwrite it; use mode destroy,format,mount to start over", node, sig, want)
	}
	return "", x.run(op.ToolArgv(node), nil, nil)
}

// btrfsTop mounts the top of a btrfs filesystem (subvol=/) at a
// temporary directory, once per device.
func (x *executor) btrfsTop(op *disko.Op) (string, error) {
	node, err := x.dev(op)
	if err != nil {
		return "", err
	}
	if dir, ok := x.btrfsTmp[node]; ok {
		return dir, nil
	}
	dir, err := os.MkdirTemp("", "nivis-btrfs-")
	if err != nil {
		return "", err
	}
	if err := unix.Mount(node, dir, "btrfs", 0, "subvol=/"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount %s (btrfs, subvol=/) on %s: %w", node, dir, err)
	}
	x.btrfsTmp[node] = dir
	return dir, nil
}

func (x *executor) subvolume(op *disko.Op) (string, error) {
	top, err := x.btrfsTop(op)
	if err != nil {
		return "", err
	}
	p := filepath.Join(top, op.Subvolume)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err == nil {
		if st.Ino == 256 { // every btrfs subvolume's root directory
			return "subvolume " + op.Subvolume + " exists", nil
		}
		return "", fmt.Errorf("%s exists in the filesystem but is not a subvolume", op.Subvolume)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return "", x.run(append([]string{"btrfs", "subvolume", "create", p}, op.Args...), nil, nil)
}

func (x *executor) swapfile(op *disko.Op) (string, error) {
	top, err := x.btrfsTop(op)
	if err != nil {
		return "", err
	}
	p := filepath.Join(top, op.Subvolume, op.FilePath)
	if _, err := os.Stat(p); err == nil {
		return "swap file " + op.FilePath + " exists", nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return "", x.run([]string{"btrfs", "filesystem", "mkswapfile", "--size", op.Size, p}, nil, nil)
}

func (x *executor) mdadmCreate(op *disko.Op) (string, error) {
	if _, err := (&Resolver{Wait: 1}).Find(x.ctx, "/dev/md/"+op.Name); err == nil {
		return "/dev/md/" + op.Name + " exists", nil
	}
	o := *op
	o.Members = nil
	for _, m := range op.Members {
		n, err := x.member(m)
		if err != nil {
			return "", err
		}
		o.Members = append(o.Members, n)
	}
	if err := x.run(o.ToolArgv(""), []byte("y\n"), nil); err != nil {
		return "", err
	}
	node, err := x.res.Resolve(x.ctx, "/dev/md/"+op.Name)
	if err != nil {
		return "", fmt.Errorf("the new array did not appear: %w", err)
	}
	x.result.Devices[op.Device] = node
	// mdadm arrays can show a stale partition table from an earlier life.
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, _, err := blockSize(f)
	if err != nil {
		return "", err
	}
	return "", zeroEnds(f, size)
}

// mounted returns the topmost mount at target, if any.
func mountedAt(target string) (*mountInfo, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var top *mountInfo
	for i := range mounts {
		if mounts[i].Mountpoint == target {
			top = &mounts[i]
		}
	}
	return top, nil
}

func subvolOption(opts []string) string {
	for _, o := range opts {
		for _, s := range strings.Split(o, ",") {
			if v, ok := strings.CutPrefix(s, "subvol="); ok {
				return "/" + strings.Trim(v, "/")
			}
		}
	}
	return ""
}

func (x *executor) mount(op *disko.Op) (string, error) {
	target := filepath.Join(x.o.Root, op.Mountpoint)
	source := op.Device
	var devnum uint64
	if strings.HasPrefix(op.Device, "/dev/") {
		n, err := x.dev(op)
		if err != nil {
			return "", err
		}
		source = n
		if devnum, err = devOf(n); err != nil {
			return "", err
		}
	}
	cur, err := mountedAt(target)
	if err != nil {
		return "", err
	}
	if cur != nil {
		same := cur.FSType == op.Format
		if devnum != 0 {
			d := unix.Mkdev(cur.Major, cur.Minor)
			if cur.Major == 0 && strings.HasPrefix(cur.Source, "/dev/") {
				d, _ = devOf(cur.Source)
			}
			same = same && d == devnum
		}
		if sv := subvolOption(op.Options); sv != "" {
			same = same && cur.Root == sv
		}
		if same {
			return "already mounted at " + target, nil
		}
		return "", fmt.Errorf("%s is already a mount of %s (%s): unmount it first (nivis disko --mode unmount)", target, cur.Source, cur.FSType)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("create mountpoint %s: %w", target, err)
	}
	flags, data := mountFlags(op.Options)
	if err := unix.Mount(source, target, op.Format, flags, data); err != nil {
		hint := ""
		switch {
		case errors.Is(err, syscall.ENODEV):
			hint = fmt.Sprintf(" (the kernel has no %s support)", op.Format)
		case errors.Is(err, syscall.EINVAL):
			hint = " (an option the kernel does not take, or a damaged filesystem: the kernel log, dmesg, says which)"
		}
		return "", fmt.Errorf("mount(%q, %q, %q, %#x, %q): %w%s", source, target, op.Format, flags, data, err, hint)
	}
	return "", nil
}

func (x *executor) umount(op *disko.Op) (string, error) {
	target := filepath.Join(x.o.Root, op.Mountpoint)
	cur, err := mountedAt(target)
	if err != nil {
		return "", err
	}
	if cur == nil {
		return "not mounted", nil
	}
	return "", x.unmountList([]string{target})
}

// swapTarget returns the path swapon uses and how /proc/swaps shows it.
func (x *executor) swapTarget(op *disko.Op) (string, func(activeSwap) bool, error) {
	if op.FilePath != "" {
		p := filepath.Join(x.o.Root, op.FilePath)
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return "", nil, fmt.Errorf("swap file %s: %w", p, err)
		}
		return p, func(s activeSwap) bool { return !s.IsDev && s.Dev == st.Dev && s.Ino == st.Ino }, nil
	}
	n, err := x.dev(op)
	if err != nil {
		return "", nil, err
	}
	d, err := devOf(n)
	if err != nil {
		return "", nil, err
	}
	return n, func(s activeSwap) bool { return s.IsDev && s.Dev == d }, nil
}

func (x *executor) swapActive(match func(activeSwap) bool) (bool, error) {
	swaps, err := readSwaps()
	if err != nil {
		return false, err
	}
	for _, s := range swaps {
		if match(s) {
			return true, nil
		}
	}
	return false, nil
}

func (x *executor) swapon(op *disko.Op) (string, error) {
	p, match, err := x.swapTarget(op)
	if err != nil {
		return "", err
	}
	if on, err := x.swapActive(match); err != nil || on {
		return p + " is active swap", err
	}
	if err := swapon(p, swapFlags(op.Priority, op.Discard)); err != nil {
		return "", fmt.Errorf("swapon %s: %w", p, err)
	}
	return "", nil
}

func (x *executor) swapoff(op *disko.Op) (string, error) {
	p, match, err := x.swapTarget(op)
	if err != nil {
		if os.IsNotExist(errors.Unwrap(err)) {
			return "not there", nil
		}
		return "", err
	}
	on, err := x.swapActive(match)
	if err != nil {
		return "", err
	}
	if !on {
		return "not active", nil
	}
	if err := swapoff(p); err != nil {
		return "", fmt.Errorf("swapoff %s: %w", p, err)
	}
	return "", nil
}
