package sshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
)

// signalGrace is how long a cancelled command gets to exit on SIGTERM
// before its session is closed under it.
const signalGrace = 2 * time.Second

// Run runs cmd on the host (through the login shell, as ssh does) with
// stdout and stderr streamed as they come. A non-zero exit is an error
// that errors.As finds as *agent.ExitError.
//
// Cancelling ctx sends SIGTERM, then closes the session and returns at
// once. sshd ignores signals for root logins (no privilege separation after
// auth), so there the remote command only ends when it next writes
// (SIGPIPE) or reads its closed stdin.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := c.ssh.NewSession()
	if err != nil {
		return exitcode.Wrap(exitcode.Connection, fmt.Errorf("open a session on %s: %w", c, err))
	}
	defer sess.Close()
	// Gates: after a cancelled Run returns, late output must not reach the
	// caller's writers.
	outGate, errGate := &gate{w: stdout}, &gate{w: stderr}
	defer outGate.close()
	defer errGate.close()
	if stdout != nil {
		sess.Stdout = outGate
	}
	if stderr != nil {
		sess.Stderr = errGate
	}
	var in io.WriteCloser
	if stdin != nil {
		// Our own copy, not sess.Stdin: Wait would block on a stdin that
		// never ends (a terminal) even after the command exited.
		if in, err = sess.StdinPipe(); err != nil {
			return exitcode.Wrap(exitcode.Connection, err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		return exitcode.Wrap(exitcode.Connection, fmt.Errorf("start %q on %s: %w", cmd, c, err))
	}
	if in != nil {
		go func() {
			_, _ = copyBuffered(in, stdin)
			in.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		return c.exitError(cmd, err)
	case <-ctx.Done():
	}
	_ = sess.Signal(ssh.SIGTERM)
	select {
	case <-done:
	case <-time.After(signalGrace):
	}
	return fmt.Errorf("%q on %s: %w", cmd, c, ctx.Err())
}

// gate passes writes through until closed, then drops them.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// exitError maps a session's end to agent.ExitError or a connection error.
func (c *Client) exitError(cmd string, err error) error {
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if sig := ee.Signal(); sig != "" {
			// As the ssh client: a command killed by a signal exits 255.
			return fmt.Errorf("%q on %s killed by signal %s: %w", cmd, c, sig, &agent.ExitError{Status: 255})
		}
		return &agent.ExitError{Status: ee.ExitStatus()}
	}
	var me *ssh.ExitMissingError
	if errors.As(err, &me) {
		return exitcode.Errorf(exitcode.Connection, "%q on %s: the connection ended before the command reported its exit status", cmd, c)
	}
	return exitcode.Wrap(exitcode.Connection, fmt.Errorf("%q on %s: %w", cmd, c, err))
}

// copyBuffered copies with large writes: fewer, fuller SSH packets.
func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, copyBufferSize)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf)
}

const copyBufferSize = 1 << 20
