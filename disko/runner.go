package disko

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Command is one external program to run.
type Command struct {
	Argv []string
	// Stdin is fed to the program and never logged (it may be a key).
	Stdin []byte
	// Env adds KEY=VALUE pairs to the environment (hooks).
	Env []string
}

// Runner runs external tools (mkfs, cryptsetup, lvm, mdadm, wipefs). It
// is the one seam between the plan and the outside world's programs:
// tests record or fake it, the real one is ExecRunner.
type Runner interface {
	// Run runs c and returns its combined output. A non-zero exit is an
	// error that carries the output.
	Run(ctx context.Context, c Command) ([]byte, error)
}

// ExecRunner runs commands with os/exec. Logf, when set, receives each
// exact command line before it runs, and the output when it fails.
type ExecRunner struct {
	Logf func(format string, args ...any)
}

// CommandError is a tool that failed, with what it printed.
type CommandError struct {
	Argv   []string
	Err    error
	Output string
}

func (e *CommandError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("`%s` failed: %v", shellQuote(e.Argv), e.Err)
	}
	return fmt.Sprintf("`%s` failed: %v:\n%s", shellQuote(e.Argv), e.Err, out)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, c Command) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("empty command")
	}
	if r.Logf != nil {
		r.Logf("$ %s", shellQuote(c.Argv))
	}
	bin, ok := FindTool(c.Argv[0])
	if !ok {
		return nil, &CommandError{Argv: c.Argv, Err: fmt.Errorf("%s is not installed", c.Argv[0])}
	}
	cmd := exec.CommandContext(ctx, bin, c.Argv[1:]...)
	cmd.Args[0] = c.Argv[0]
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PATH="+toolPath())
	cmd.Env = append(cmd.Env, c.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if r.Logf != nil && out.Len() > 0 {
			r.Logf("%s", strings.TrimSpace(out.String()))
		}
		return out.Bytes(), &CommandError{Argv: c.Argv, Err: err, Output: out.String()}
	}
	return out.Bytes(), nil
}

func toolPath() string {
	p := os.Getenv("PATH")
	for _, d := range toolDirs {
		if !strings.Contains(":"+p+":", ":"+d+":") {
			p += ":" + d
		}
	}
	return strings.TrimPrefix(p, ":")
}

// RecordingRunner records every command and answers with Reply (or
// success and no output). For tests.
type RecordingRunner struct {
	mu       sync.Mutex
	Commands []Command
	Reply    func(c Command) ([]byte, error)
}

// Run implements Runner.
func (r *RecordingRunner) Run(_ context.Context, c Command) ([]byte, error) {
	r.mu.Lock()
	r.Commands = append(r.Commands, c)
	r.mu.Unlock()
	if r.Reply != nil {
		return r.Reply(c)
	}
	return nil, nil
}

// Argvs returns the recorded command lines, quoted.
func (r *RecordingRunner) Argvs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		out[i] = shellQuote(c.Argv)
	}
	return out
}
