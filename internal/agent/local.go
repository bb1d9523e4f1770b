package agent

import (
	"context"
	"io"
	"os"
	"os/user"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/exitcode"
)

// Local is a Conn to this very process (--local): every verb goes through
// the same table and protocol encoding as on a remote host.
type Local struct {
	Table *Table
	// OnEvent gets the verbs' events (nil drops them).
	OnEvent func(Event)
}

// Call implements Conn.
func (l *Local) Call(ctx context.Context, verb string, req, resp any) error {
	return Call(ctx, l.runner(), "nivis", verb, req, resp, l.OnEvent)
}

// Stream implements Conn.
func (l *Local) Stream(ctx context.Context, verb string, req any, data io.Reader, resp any) error {
	return CallStream(ctx, l.runner(), "nivis", verb, req, data, resp, l.OnEvent)
}

// Upload implements Conn: a local copy.
func (l *Local) Upload(ctx context.Context, src io.Reader, size int64, remote string, mode os.FileMode) error {
	f, err := os.OpenFile(remote, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, src, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// HostKey implements Conn: there is none.
func (l *Local) HostKey() ssh.PublicKey { return nil }

// User implements Conn.
func (l *Local) User() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// Close implements Conn.
func (l *Local) Close() error { return nil }

func (l *Local) runner() Runner { return tableRunner{l.Table} }

// tableRunner serves `nivis agent VERB` and `nivis agent-stream VERB ARGS`
// command lines from a table in this process.
type tableRunner struct{ t *Table }

func (r tableRunner) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	f := strings.Fields(cmd)
	var err error
	switch {
	case len(f) >= 4 && f[len(f)-3] == "agent-stream":
		err = r.t.ServeStream(ctx, f[len(f)-2], f[len(f)-1], stdin, stdout)
	case len(f) >= 3 && f[len(f)-2] == "agent":
		err = r.t.Serve(ctx, f[len(f)-1], stdin, stdout)
	default:
		return exitcode.Errorf(exitcode.Usage, "not an agent command: %q", cmd)
	}
	if err != nil {
		return &ExitError{Status: int(exitcode.Of(err))}
	}
	return nil
}
