package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
	f, size, _, err := openBlock(node, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return disko.Probe(f, size)
}

// do runs one op; a non-empty string means it was left alone, and why.
func (x *executor) do(op *disko.Op) (string, error) {
	run, ok := operations[op.Op]
	if !ok {
		return "", fmt.Errorf("unknown operation %q", op.Op)
	}
	return run(x, op)
}

// operations maps each kind of op to the executor method that runs it;
// the methods live in one file per family (release, table, luks, lvm,
// mdadm, filesystem, mount).
var operations = map[string]func(*executor, *disko.Op) (string, error){
	disko.OpUnmountAll:   func(x *executor, op *disko.Op) (string, error) { return x.unmountAll(op.Mountpoint) },
	disko.OpDeactivate:   (*executor).deactivate,
	disko.OpWipe:         func(x *executor, op *disko.Op) (string, error) { return "", x.wipe(op) },
	disko.OpHook:         func(x *executor, op *disko.Op) (string, error) { return "", x.hook(op) },
	disko.OpGPT:          (*executor).gpt,
	disko.OpHybridMBR:    (*executor).tableCommands,
	disko.OpParted:       (*executor).tableCommands,
	disko.OpMkfs:         (*executor).makeSignature,
	disko.OpMkswap:       (*executor).makeSignature,
	disko.OpPVCreate:     (*executor).makeSignature,
	disko.OpSubvolume:    (*executor).subvolume,
	disko.OpSwapfile:     (*executor).swapfile,
	disko.OpLuksFormat:   (*executor).luksFormat,
	disko.OpLuksOpen:     (*executor).luksOpen,
	disko.OpLuksAddKey:   (*executor).luksAddKey,
	disko.OpLuksClose:    (*executor).luksClose,
	disko.OpVGCreate:     (*executor).vgCreate,
	disko.OpLVCreate:     (*executor).lvCreate,
	disko.OpVGActivate:   (*executor).vgActivate,
	disko.OpVGDeactivate: (*executor).vgDeactivate,
	disko.OpMdadmCreate:  (*executor).mdadmCreate,
	disko.OpMount:        (*executor).mount,
	disko.OpUmount:       (*executor).umount,
	disko.OpSwapon:       (*executor).swapon,
	disko.OpSwapoff:      (*executor).swapoff,
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

// withMembers is op with its members (PVs, array devices) resolved to
// nodes.
func (x *executor) withMembers(op *disko.Op) (disko.Op, error) {
	o := *op
	o.Members = nil
	for _, m := range op.Members {
		n, err := x.member(m)
		if err != nil {
			return o, err
		}
		o.Members = append(o.Members, n)
	}
	return o, nil
}
