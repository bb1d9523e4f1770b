//go:build linux

package sysmgr

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/command"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{
		agent.Handle(VerbApply, func(ctx context.Context, req *ApplyRequest, em *agent.Emitter) (*ApplyResult, error) {
			keepRunning()
			h := NewHost(req.Root, em)
			if req.JobTimeout > 0 {
				if d, ok := h.Systemd.(*DBusSystemd); ok {
					d.JobTimeout = req.JobTimeout
				}
			}
			return h.Apply(ctx, req)
		}),
		agent.Handle(VerbDiff, func(ctx context.Context, req *DiffRequest, em *agent.Emitter) (*DiffResult, error) {
			return NewHost(req.Root, em).Diff(ctx, req)
		}),
		agent.Handle(VerbGenerations, func(ctx context.Context, req *RootRequest, em *agent.Emitter) (*GenerationsResult, error) {
			return NewHost(req.Root, em).Generations(ctx)
		}),
		agent.Handle(VerbRollback, func(ctx context.Context, req *RollbackRequest, em *agent.Emitter) (*ApplyResult, error) {
			keepRunning()
			return NewHost(req.Root, em).Rollback(ctx, req.To)
		}),
		agent.Handle(VerbGC, func(ctx context.Context, req *GCRequest, em *agent.Emitter) (*GCResult, error) {
			return NewHost(req.Root, em).GC(ctx, req.Keep)
		}),
		agent.Handle(VerbDeactivate, func(ctx context.Context, req *RootRequest, em *agent.Emitter) (*ApplyResult, error) {
			keepRunning()
			return NewHost(req.Root, em).Deactivate(ctx)
		}),
		agent.Handle(VerbConfirm, func(ctx context.Context, req *ConfirmRequest, em *agent.Emitter) (*ConfirmResult, error) {
			return NewHost(req.Root, em).Confirm(ctx, req.Generation)
		}),
		agent.Handle(VerbConfirmWait, func(ctx context.Context, _ *struct{}, em *agent.Emitter) (*struct{}, error) {
			keepRunning()
			return nil, NewHost(os.Getenv(RootEnv), em).ConfirmWait(ctx)
		}),
	}
}

// keepRunning lets an activation finish when the SSH session drops under
// it (a restarted sshd, a lost link): a hangup or a write to a closed pipe
// must not kill the agent halfway; the journal covers a real kill.
func keepRunning() { signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) }

// NewHost returns the Host for root. Commands are real either way (useradd
// and groupadd with --prefix, systemd-tmpfiles with --root for a tree);
// the running system ("" or "/") is driven over D-Bus, while a tree has no
// service manager: its systemd calls are written to its state dir.
func NewHost(root string, em *agent.Emitter) *Host {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	h := &Host{Root: root, Cmd: command.Exec{Log: em.OpLog()}}
	if em != nil {
		h.Emit = em.Emit
	}
	if root == "/" {
		h.Systemd = &DBusSystemd{JobTimeout: 90 * time.Second}
		h.Settle = 3 * time.Second
		h.ProbeSystemd = true
		return h
	}
	state := filepath.Join(root, StateDir)
	_ = os.MkdirAll(state, 0o755)
	sd := &TreeSystemd{Log: filepath.Join(state, "systemd-calls.log")}
	h.Systemd = sd
	h.StartWatcher = func(ctx context.Context, p *Pending) error {
		argv, err := h.watcherArgv(p)
		if err != nil {
			return err
		}
		return sd.StartTransient(ctx, argv)
	}
	return h
}
