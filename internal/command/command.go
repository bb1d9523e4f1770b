// Package command is nivis's one seam to external programs (mkfs.*,
// cryptsetup, lvm, mdadm, grub-install, bootctl, useradd, systemd-run...):
// a Command says exactly what runs, a Runner runs it. The real Runner is
// Exec, which logs every command through the operation log; tests record
// or answer commands with a Recorder, and fake nothing else.
package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Command is one external program run.
type Command struct {
	Argv []string `json:"argv"`
	// Stdin is fed to the program and never logged (it may be a key).
	Stdin []byte `json:"-"`
	// Env adds KEY=VALUE pairs to the environment.
	Env []string `json:"env,omitempty"`
	// Chroot runs the program inside this root, argv[0] resolved there.
	Chroot string `json:"chroot,omitempty"`
}

// String is the command as a shell would take it, quoted.
func (c Command) String() string {
	s := Quote(c.Argv)
	if c.Chroot != "" {
		s = "chroot " + Quote([]string{c.Chroot}) + " " + s
	}
	return s
}

// Runner runs external programs. Run returns the combined output, also on
// failure; a failure is an *Error carrying it.
type Runner interface {
	Run(ctx context.Context, c Command) ([]byte, error)
}

// Error is a program that could not run or exited non-zero.
type Error struct {
	Command Command
	Err     error
	Output  string
}

func (e *Error) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("`%s` failed: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("`%s` failed: %v:\n%s", e.Command, e.Err, out)
}

func (e *Error) Unwrap() error { return e.Err }

// Quote renders argv for a shell: words with only safe characters as
// they are, others in single quotes.
func Quote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// Recorder is the Runner of tests: it records every command and answers
// with Reply (nil: success and no output).
type Recorder struct {
	mu       sync.Mutex
	Commands []Command
	Reply    func(ctx context.Context, c Command) ([]byte, error)
}

// Run implements Runner.
func (r *Recorder) Run(ctx context.Context, c Command) ([]byte, error) {
	r.mu.Lock()
	r.Commands = append(r.Commands, c)
	reply := r.Reply
	r.mu.Unlock()
	if reply == nil {
		return nil, nil
	}
	out, err := reply(ctx, c)
	if err != nil {
		var ce *Error
		if !errors.As(err, &ce) {
			err = &Error{Command: c, Err: err, Output: string(out)}
		}
	}
	return out, err
}

// Argvs returns the recorded commands, quoted, one string each.
func (r *Recorder) Argvs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		out[i] = c.String()
	}
	return out
}

// Tail keeps the last n lines of a program's output for an error message.
func Tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
