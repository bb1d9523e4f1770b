//go:build linux

package kexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nivis/nivis/initramfs"
	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{
		agent.Handle(VerbPreflight, preflightVerb),
		agent.Handle(VerbPrepare, prepareVerb),
		agent.Handle(VerbExec, execVerb),
	}
}

// gatherFacts takes the host's snapshot; tests point it at a fake tree.
var gatherFacts = facts.Gather

func preflightVerb(ctx context.Context, req *PrepareRequest, ev *agent.Emitter) (*PreflightResult, error) {
	f, err := gatherFacts(ctx)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	return Preflight(*req, f), nil
}

// prepareVerb checks, captures the host, assembles the rescue initrd and
// loads it with the kernel. Nothing on disk changes; the loaded kernel
// only boots on kexec-exec.
func prepareVerb(ctx context.Context, reqp *PrepareRequest, ev *agent.Emitter) (*PrepareResult, error) {
	req := *reqp
	ev.Step("preflight", "checking that this host can kexec")
	f, err := gatherFacts(ctx)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	pf := Preflight(req, f)
	for _, c := range pf.Checks {
		if c.Status != "ok" {
			ev.Logf(map[string]string{"warn": "warning", "fail": "error"}[c.Status], "preflight %s: %s", c.Name, c.Detail)
		}
	}
	if !pf.OK && !req.Force {
		return nil, exitcode.Errorf(exitcode.Precondition, "this host cannot be kexec'd: %s", failures(pf.Checks))
	}
	res := &PrepareResult{Kernel: pf.Kernel}
	if res.Kernel == "" {
		res.Kernel = req.Kernel
	}
	dir := pf.WorkDir
	if dir == "" {
		dir = workDirCandidates(req.WorkDir)[0]
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	current := f.Kernel.Cmdline
	logf := func(format string, args ...any) { ev.Logf("info", format, args...) }

	if req.Initrd != "" {
		res.Initrd = req.Initrd
		res.Cmdline = req.Append
		if res.Cmdline == "" {
			res.Cmdline = current
		}
	} else {
		ev.Step("capture", "reading the host's network, SSH keys and identity")
		var ports []int
		if req.SSHPort != 0 {
			ports = []int{req.SSHPort}
		}
		captured, err := initramfs.Capture(f, initramfs.CaptureOptions{
			LoginUser:     req.LoginUser,
			ExtraKeys:     req.AuthorizedKeys,
			SSHPorts:      ports,
			RescueTimeout: time.Duration(req.RescueTimeoutSeconds) * time.Second,
		})
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Precondition, err)
		}
		for _, w := range captured.Warnings {
			ev.Logf("warning", "%s", w)
		}
		res.Warnings = append(res.Warnings, captured.Warnings...)
		res.BootID = captured.State.BootID
		res.SSHPorts = captured.State.SSHPorts

		ev.Step("assemble", "building the rescue initrd")
		opts, err := imageOptions(req)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, err)
		}
		opts.Output = filepath.Join(dir, "initrd.img")
		opts.State = captured.State
		opts.HostKeys = captured.HostKeys
		opts.Log = logf
		start := time.Now()
		img, err := initramfs.Assemble(opts)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("assembling the rescue initrd: %w", err))
		}
		res.AssembleSeconds = time.Since(start).Seconds()
		for _, w := range img.Warnings {
			ev.Logf("warning", "%s", w)
		}
		res.Warnings = append(res.Warnings, img.Warnings...)
		res.Image = img
		for k := range captured.HostKeys {
			res.HostKeys = append(res.HostKeys, k)
		}
		res.Initrd = img.Path
		res.Cmdline = Cmdline(current, append(append([]string{}, RescueParams...), req.Append)...)
		ev.Logf("info", "rescue initrd: %.1f MiB (%s), %.1f MiB unpacked, built in %.1fs", mib(img.Size), img.Compression, mib(img.Unpacked), res.AssembleSeconds)
	}
	if res.BootID == "" {
		res.BootID = f.BootID
	}

	ev.Step("load", "loading the kernel and initrd")
	method, err := load(HostStateOf(f), res.Kernel, res.Initrd, res.Cmdline, dir, logf)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	res.Method = method
	ev.Logf("info", "loaded %s with %s; cmdline: %s", res.Kernel, method, res.Cmdline)
	if req.Initrd == "" && !req.KeepInitrd {
		// The kernel holds its own copy; the file only takes RAM in tmpfs.
		_ = os.Remove(res.Initrd)
	}
	return res, nil
}

// execVerb schedules the kexec reboot in a detached child and returns, or
// is that child (Detached) and reboots.
func execVerb(ctx context.Context, req *ExecRequest, ev *agent.Emitter) (*ExecResult, error) {
	delay := 2 * time.Second
	if req.Delay != "" {
		d, err := time.ParseDuration(req.Delay)
		if err != nil {
			return nil, exitcode.Wrap(exitcode.Usage, fmt.Errorf("delay %q: %w", req.Delay, err))
		}
		delay = d
	}
	if req.Detached {
		if err := runDetached(delay); err != nil {
			return nil, exitcode.Wrap(exitcode.Change, err)
		}
		return nil, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	pid, err := Schedule(exe, DefaultWorkDir, delay)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, err)
	}
	ev.Logf("info", "kexec in %s (pid %d)", delay, pid)
	return &ExecResult{PID: pid, Delay: delay.String()}, nil
}
