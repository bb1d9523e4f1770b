//go:build linux

package sysmgr

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Commands runs the few external tools sysmgr needs (useradd, groupadd,
// systemd-tmpfiles, systemd-run, and systemctl/journalctl for diagnostics)
// with an exact argv, so tests can record them at this one edge.
type Commands interface {
	Run(ctx context.Context, argv ...string) ([]byte, error)
}

// ExecCommands runs commands for real and returns their combined output.
type ExecCommands struct{}

// Run runs argv.
func (ExecCommands) Run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// RecordedCommands runs nothing: it records each argv, for a Root that is
// not the running system (tests, --root trees). useradd and groupadd are
// mirrored into the tree's own /etc/passwd and /etc/group, so later owner
// lookups in that tree find the accounts.
type RecordedCommands struct {
	Root string
	// Log, when set, also gets one line per command (a file in the tree).
	Log string

	mu    sync.Mutex
	Calls [][]string
	// Output maps a command name to what it prints (diagnostics in tests).
	Output map[string]string
}

// Run records argv.
func (r *RecordedCommands) Run(ctx context.Context, argv ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, append([]string(nil), argv...))
	if r.Log != "" {
		if f, err := os.OpenFile(r.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			fmt.Fprintln(f, strings.Join(argv, " "))
			f.Close()
		}
	}
	switch argv[0] {
	case "groupadd":
		return nil, r.addLine("/etc/group", argv, func(name string, id int) string { return fmt.Sprintf("%s:x:%d:", name, id) })
	case "useradd":
		return nil, r.addLine("/etc/passwd", argv, func(name string, id int) string {
			return fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin", name, id, id)
		})
	}
	return []byte(r.Output[argv[0]]), nil
}

// Commands returns the recorded argv lines, joined by spaces.
func (r *RecordedCommands) Commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.Calls {
		out = append(out, strings.Join(c, " "))
	}
	return out
}

func (r *RecordedCommands) addLine(file string, argv []string, line func(string, int) string) error {
	name := argv[len(argv)-1]
	p := filepath.Join(r.Root, file)
	ids, err := readIDs(p)
	if err != nil {
		return err
	}
	id := 900
	for _, v := range ids {
		if v >= id {
			id = v + 1
		}
	}
	for i, a := range argv {
		if (a == "--uid" || a == "--gid") && i+1 < len(argv) {
			if n, err := strconv.Atoi(argv[i+1]); err == nil && (a == "--uid" || argv[0] == "groupadd") {
				id = n
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, line(name, id))
	if err == nil && file == "/etc/passwd" {
		// useradd --user-group makes the user's own group too.
		for _, a := range argv {
			if a == "--user-group" {
				g := filepath.Join(r.Root, "/etc/group")
				gf, gerr := os.OpenFile(g, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if gerr != nil {
					return gerr
				}
				fmt.Fprintf(gf, "%s:x:%d:\n", name, id)
				gf.Close()
			}
		}
	}
	return err
}
