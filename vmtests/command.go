//go:build linux

package vmtests

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// commandRunner is the one place this package runs external tools
// (debootstrap, mkfs.ext4, chroot, qemu-img), so every exact argv is logged
// and a failure carries the tool's output.
type commandRunner struct {
	logf func(format string, args ...any)
}

func (r commandRunner) log(format string, args ...any) {
	if r.logf != nil {
		r.logf(format, args...)
	}
}

// run executes name with args and returns its combined output.
func (r commandRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := quoteArgv(append([]string{name}, args...))
	r.log("[started] %s", argv)
	start := time.Now()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err != nil {
		r.log("[failed] %s after %s: %v", argv, time.Since(start).Round(time.Millisecond), err)
		return out.Bytes(), fmt.Errorf("%s: %w\n%s", argv, err, tail(out.String(), 4096))
	}
	r.log("[finished] %s in %s", argv, time.Since(start).Round(time.Millisecond))
	return out.Bytes(), nil
}

// quoteArgv renders argv the way a shell user would type it.
func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]{}!#~") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// tail returns at most the last n bytes of s, cut at a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
