package install

import (
	"context"
	"strings"
	"sync"
)

// Command is one external tool run: its argv, inside Chroot when set.
type Command struct {
	Argv   []string `json:"argv"`
	Chroot string   `json:"chroot,omitempty"`
}

func (c Command) String() string {
	s := strings.Join(c.Argv, " ")
	if c.Chroot != "" {
		s = "chroot " + c.Chroot + " " + s
	}
	return s
}

// CommandRunner runs external tools (grub-install, bootctl...): the one
// edge tests replace. It returns the combined output, also on failure.
type CommandRunner interface {
	Run(ctx context.Context, c Command) ([]byte, error)
}

// RecordingRunner records each command, then answers with Next (nil: success
// with no output). Tests check the exact argv with it.
type RecordingRunner struct {
	mu       sync.Mutex
	Commands []Command
	Next     func(ctx context.Context, c Command) ([]byte, error)
}

// Run implements CommandRunner.
func (r *RecordingRunner) Run(ctx context.Context, c Command) ([]byte, error) {
	r.mu.Lock()
	r.Commands = append(r.Commands, c)
	next := r.Next
	r.mu.Unlock()
	if next == nil {
		return nil, nil
	}
	return next(ctx, c)
}

// tail keeps the last n lines of a tool's output for an error message.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
