//go:build linux

package sysmgr

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

func init() {
	agent.Register(VerbApply, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req ApplyRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		keepRunning()
		h := NewHost(req.Root, em)
		if req.JobTimeout > 0 {
			if d, ok := h.Systemd.(*DBusSystemd); ok {
				d.JobTimeout = req.JobTimeout
			}
		}
		return h.Apply(ctx, &req)
	})
	agent.Register(VerbDiff, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req DiffRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		return NewHost(req.Root, em).Diff(ctx, &req)
	})
	agent.Register(VerbGenerations, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req RootRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		return NewHost(req.Root, em).Generations(ctx)
	})
	agent.Register(VerbRollback, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req RollbackRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		keepRunning()
		return NewHost(req.Root, em).Rollback(ctx, req.To)
	})
	agent.Register(VerbGC, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req GCRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		return NewHost(req.Root, em).GC(ctx, req.Keep)
	})
	agent.Register(VerbDeactivate, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req RootRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		keepRunning()
		return NewHost(req.Root, em).Deactivate(ctx)
	})
	agent.Register(VerbConfirm, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		var req ConfirmRequest
		if err := decode(raw, &req); err != nil {
			return nil, err
		}
		return NewHost(req.Root, em).Confirm(ctx, req.Generation)
	})
	// The watcher runs under systemd-run with no request on stdin: the root
	// comes from the environment, the rest from the pending file.
	agent.Register(VerbConfirmWait, func(ctx context.Context, raw json.RawMessage, em *agent.Emitter) (any, error) {
		keepRunning()
		root := os.Getenv(RootEnv)
		return nil, NewHost(root, em).ConfirmWait(ctx)
	})
}

func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return exitcode.Errorf(exitcode.Usage, "bad request: %v (client and agent are different nivis versions?)", err)
	}
	return nil
}

// keepRunning lets an activation finish when the SSH session drops under
// it (a restarted sshd, a lost link): a hangup or a write to a closed pipe
// must not kill the agent halfway; the journal covers a real kill.
func keepRunning() { signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) }

// NewHost returns the Host for root: the running system ("" or "/") is
// driven over D-Bus and real commands; any other root is a tree whose
// systemd calls and commands are recorded in files under its state dir.
func NewHost(root string, em *agent.Emitter) *Host {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	h := &Host{Root: root}
	if em != nil {
		h.Emit = em.Emit
	}
	if root == "/" {
		h.Systemd = &DBusSystemd{JobTimeout: 90 * time.Second}
		h.Cmd = ExecCommands{}
		h.Settle = 3 * time.Second
		h.ProbeSystemd = true
		return h
	}
	state := filepath.Join(root, StateDir)
	_ = os.MkdirAll(state, 0o755)
	h.Systemd = &RecordedSystemd{Log: filepath.Join(state, "systemd-calls.log")}
	h.Cmd = &RecordedCommands{Root: root, Log: filepath.Join(state, "commands.log")}
	return h
}
