package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/nivis/nivis/internal/exitcode"
)

// Conn is a connection to a host's agent: the SSH session, or this very
// process with --local. Takeover, sysmgr and disko's client side use only
// this, so tests drive them with a recording fake.
type Conn interface {
	// Call runs an agent verb with req and decodes its result into resp.
	Call(ctx context.Context, verb string, req, resp any) error
	// Stream runs a streaming verb: req on the command line, data on stdin.
	Stream(ctx context.Context, verb string, req any, data io.Reader, resp any) error
	// Upload writes src (size bytes) to remote on the host with mode.
	Upload(ctx context.Context, src io.Reader, size int64, remote string, mode os.FileMode) error
	// HostKey is the SSH host key the host presented (nil for --local).
	HostKey() ssh.PublicKey
	// User is the login user on the host.
	User() string
	Close() error
}

// CallStream runs `AGENT agent-stream VERB ARGS` through r with data on
// stdin. An agent that ends without a result may have changed the host
// halfway: that is a change failure.
func CallStream(ctx context.Context, r Runner, agentCmd, verb string, req any, data io.Reader, resp any, onEvent func(Event)) error {
	args, err := EncodeArgs(req)
	if err != nil {
		return err
	}
	err = CallCommand(ctx, r, agentCmd+" agent-stream "+verb+" "+args, verb, data, resp, onEvent)
	var nr *NoResultError
	if !errors.As(err, &nr) {
		return err
	}
	if nr.Output != "" {
		return exitcode.Wrap(exitcode.Change, fmt.Errorf("agent %s ended without a result (the host may be half-changed): %w: %s", verb, nr.Err, nr.Output))
	}
	return exitcode.Wrap(exitcode.Change, fmt.Errorf("agent %s ended without a result (the host may be half-changed): %w", verb, nr.Err))
}
