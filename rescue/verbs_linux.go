//go:build linux

package rescue

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/carry"
	"github.com/nivis/nivis/internal/exitcode"
)

// Handlers are the agent verbs this package serves.
func Handlers() []agent.Handler {
	return []agent.Handler{
		agent.Handle(VerbInit, func(ctx context.Context, _ *struct{}, _ *agent.Emitter) (*struct{}, error) {
			Run(context.WithoutCancel(ctx), DefaultOptions())
			return nil, nil // not reached
		}),
		agent.Handle(VerbReboot, func(ctx context.Context, req *RebootRequest, ev *agent.Emitter) (*RebootResult, error) {
			return requestReboot(carry.RescueMarker, "/run/nivis/reboot-request.json", *req)
		}),
	}
}

func init() {
	// As uinit, `nivis agent rescue-init` has the console as stdin (or
	// nothing), and agent.Serve reads a request from stdin until EOF,
	// which a console never sends. This verb takes no request: give it an
	// empty stdin before main reads os.Stdin.
	if isRescueInit(os.Args) {
		if r, w, err := os.Pipe(); err == nil {
			w.Close()
			os.Stdin = r
		}
	}
}

func requestReboot(markerPath, requestPath string, req RebootRequest) (*RebootResult, error) {
	m, err := ReadMarker(markerPath)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.Precondition, "this host is not running the nivis rescue system (%v): refusing to reboot it from here; use the host's own reboot", err)
	}
	if m.PID <= 0 || unix.Kill(m.PID, 0) != nil {
		return nil, exitcode.Errorf(exitcode.Precondition, "the rescue system's process %d is gone; reboot with `reboot -f` on the host", m.PID)
	}
	if err := writeJSONAtomic(requestPath, req); err != nil {
		return nil, exitcode.Wrap(exitcode.Change, fmt.Errorf("write reboot request: %w", err))
	}
	if err := unix.Kill(m.PID, unix.SIGUSR1); err != nil {
		return nil, exitcode.Wrap(exitcode.Change, fmt.Errorf("signal the rescue system (pid %d): %w", m.PID, err))
	}
	return &RebootResult{PID: m.PID, DelaySeconds: req.DelaySeconds, PowerOff: req.PowerOff}, nil
}

// isRescueInit recognises u-root's call of the uinit: /bin/uinit (a link
// to the agent) with the arguments from /etc/uinit.flags.
func isRescueInit(args []string) bool {
	return len(args) == 3 && args[1] == "agent" && args[2] == "rescue-init"
}
