package takeover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/internal/facts"
)

// Conn is a connection to the target with the agent reachable: what the
// phases need, and all they need, so they can be driven by tests.
type Conn = agent.Conn

// Dialer opens a new connection. port overrides the target's SSH port when
// non-zero; expect, when non-nil, is the only host key to accept (after a
// kexec the host must present the key it had before, whatever known_hosts
// says about a new port).
type Dialer func(ctx context.Context, port int, expect ssh.PublicKey) (Conn, error)

// WaitOptions control WaitForNewBoot.
type WaitOptions struct {
	OldBootID string
	Port      int
	HostKey   ssh.PublicKey
	Deadline  time.Duration
	// Rescue requires the new boot to be the nivis rescue system.
	Rescue bool
	// Out gets a visible countdown (nil for none).
	Out io.Writer
	// Interval between attempts.
	Interval time.Duration
}

// WaitForNewBoot reconnects until the host answers with a boot_id other
// than OldBootID and the same host key, or the deadline passes. It never
// waits silently: Out gets a line with the time left every few seconds.
func WaitForNewBoot(ctx context.Context, dial Dialer, o WaitOptions) (Conn, *facts.Facts, error) {
	if o.Interval == 0 {
		o.Interval = 3 * time.Second
	}
	if o.Deadline == 0 {
		o.Deadline = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()
	start := time.Now()
	var lastErr error
	lastShown := time.Time{}
	for attempt := 1; ; attempt++ {
		if o.Out != nil && time.Since(lastShown) >= 10*time.Second {
			left := (o.Deadline - time.Since(start)).Round(time.Second)
			msg := "waiting for the host to come back"
			if lastErr != nil {
				msg += " (last: " + shortErr(lastErr) + ")"
			}
			fmt.Fprintf(o.Out, "%s: %s left\n", msg, left)
			lastShown = time.Now()
		}
		attemptCtx, attemptCancel := context.WithTimeout(ctx, 30*time.Second)
		c, f, err := probe(attemptCtx, dial, o)
		attemptCancel()
		if err == nil {
			return c, f, nil
		}
		var hk *HostKeyChangedError
		if errors.As(err, &hk) {
			return nil, nil, exitcode.Wrap(exitcode.Connection, err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, nil, exitcode.Errorf(exitcode.Change,
				"the host did not come back within %s (last error: %v); check its console, the rescue system reboots into the old system by itself after its --rescue-timeout", o.Deadline, lastErr)
		case <-time.After(o.Interval):
		}
	}
}

// HostKeyChangedError means the host came back with another identity.
type HostKeyChangedError struct{ Want, Got string }

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("the host came back with a different SSH host key (%s, expected %s): refusing to talk to it; this is not the machine that was kexec'd, or its keys were not carried", e.Got, e.Want)
}

func probe(ctx context.Context, dial Dialer, o WaitOptions) (Conn, *facts.Facts, error) {
	c, err := dial(ctx, o.Port, o.HostKey)
	if err != nil {
		return nil, nil, err
	}
	if o.HostKey != nil {
		if got := c.HostKey(); got == nil || string(got.Marshal()) != string(o.HostKey.Marshal()) {
			c.Close()
			gotFP := "none"
			if got != nil {
				gotFP = ssh.FingerprintSHA256(got)
			}
			return nil, nil, &HostKeyChangedError{Want: ssh.FingerprintSHA256(o.HostKey), Got: gotFP}
		}
	}
	f, err := facts.VerbFacts.Call(ctx, c, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if f.BootID == o.OldBootID {
		c.Close()
		return nil, nil, errors.New("still the old boot (same boot_id)")
	}
	if o.Rescue && !f.NivisRescue {
		c.Close()
		return nil, nil, fmt.Errorf("a new boot, but not the nivis rescue system (os %s)", f.OS.PrettyName)
	}
	return c, f, nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}
