//go:build linux

package sysmgr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/command"
	"github.com/nivis/nivis/internal/config"
)

// requireRoot skips tests that chown to root-owned files unless root; with
// NIVIS_REQUIRE_ROOT=1 a missing root is a failure, not a skip.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root (it sets file owners) and NIVIS_REQUIRE_ROOT=1 is set")
	}
	t.Skip("needs root: activation sets file owners")
}

// testHost is a Host on a temporary root with systemd and commands recorded.
type testHost struct {
	*Host
	sd   *RecordedSystemd
	cmds *testCommands
	t    *testing.T
}

func newTestHost(t *testing.T) *testHost {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system/multi-user.target.wants", "run/systemd/system", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return attachHost(t, root, &RecordedSystemd{})
}

// attachHost makes another Host on the same root and pretend systemd, as
// a second agent process on the same machine would be.
func attachHost(t *testing.T, root string, sd *RecordedSystemd) *testHost {
	cmds := recordCommands(root)
	th := &testHost{Host: &Host{Root: root, Systemd: sd, Cmd: cmds, ProbeSystemd: true}, sd: sd, cmds: cmds, t: t}
	th.StartWatcher = func(ctx context.Context, p *Pending) error { return nil }
	return th
}

// testCommands records commands; useradd and groupadd are mirrored into
// the tree's /etc (a real useradd --prefix leaves passwd- backups that
// would show in the tests' snapshots), diagnostics answer canned output.
type testCommands struct{ *command.Recorder }

func recordCommands(root string) *testCommands {
	output := map[string]string{
		"systemctl":  "● unit - status from the recorded systemctl\n   Active: failed (Result: exit-code)",
		"journalctl": "line 1 of the unit's journal\nline 2: the service crashed",
	}
	return &testCommands{&command.Recorder{Reply: func(ctx context.Context, c command.Command) ([]byte, error) {
		switch c.Argv[0] {
		case "groupadd":
			return nil, addAccountLine(root, "/etc/group", c.Argv)
		case "useradd":
			return nil, addAccountLine(root, "/etc/passwd", c.Argv)
		}
		return []byte(output[c.Argv[0]]), nil
	}}}
}

// lines returns the recorded argv, joined by spaces.
func (c *testCommands) lines() []string {
	var out []string
	for _, cmd := range c.Recorder.Commands {
		out = append(out, strings.Join(cmd.Argv, " "))
	}
	return out
}

// addAccountLine appends the account argv adds (its last word) to file.
func addAccountLine(root, file string, argv []string) error {
	name := argv[len(argv)-1]
	p := filepath.Join(root, file)
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
	line := fmt.Sprintf("%s:x:%d:", name, id)
	if argv[0] == "useradd" {
		line = fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin", name, id, id)
	}
	if err := appendLine(p, line); err != nil {
		return err
	}
	for _, a := range argv {
		if a == "--user-group" { // the user's own group too
			return appendLine(filepath.Join(root, "/etc/group"), fmt.Sprintf("%s:x:%d:", name, id))
		}
	}
	return nil
}

func appendLine(p, line string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, line)
	return f.Close()
}

// bundle parses a Services config written in YAML (validated like a file).
func (th *testHost) bundle(yaml string) *Services {
	th.t.Helper()
	dir := th.t.TempDir()
	l, rep, err := config.Parse("test.yaml", dir, []byte("apiVersion: nivis/v1alpha1\nkind: Services\n"+yaml), Kind)
	if err != nil {
		th.t.Fatalf("config: %v\n%s", err, rep.String())
	}
	b, _, err := Resolve(l.Obj.(*Services), dir)
	if err != nil {
		th.t.Fatal(err)
	}
	return b
}

func (th *testHost) apply(yaml string) *ApplyResult {
	th.t.Helper()
	res, err := th.Apply(context.Background(), &ApplyRequest{Bundle: th.bundle(yaml), Message: "test"})
	if err != nil {
		th.t.Fatalf("apply: %v", err)
	}
	return res
}

func (th *testHost) write(p, content string, mode os.FileMode) {
	th.t.Helper()
	full := th.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		th.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		th.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		th.t.Fatal(err)
	}
}

func (th *testHost) read(p string) string {
	th.t.Helper()
	b, err := os.ReadFile(th.path(p))
	if err != nil {
		th.t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func (th *testHost) exists(p string) bool {
	_, err := os.Lstat(th.path(p))
	return err == nil
}

func (th *testHost) current() int {
	th.t.Helper()
	n, err := th.Host.current()
	if err != nil {
		th.t.Fatal(err)
	}
	return n
}

// snapshot describes every path under the root except nivis's own state
// dir: type, mode, owner, and content hash or link target.
func (th *testHost) snapshot() map[string]string {
	th.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(th.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, th.Root)
		if rel == "" || strings.HasPrefix(rel, StateDir) {
			return nil
		}
		dd, err := inspect(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %04o %d:%d", dd.Kind, dd.Mode, dd.UID, dd.GID)
		switch dd.Kind {
		case "file":
			s, _ := dd.SHA256()
			desc += " " + s[:12]
		case "symlink":
			desc = "symlink -> " + dd.Target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		th.t.Fatal(err)
	}
	return out
}

func diffSnapshots(a, b map[string]string) string {
	var keys []string
	seen := map[string]bool{}
	for k := range a {
		keys, seen[k] = append(keys, k), true
	}
	for k := range b {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out strings.Builder
	for _, k := range keys {
		if a[k] != b[k] {
			fmt.Fprintf(&out, "  %s: want %q, got %q\n", k, a[k], b[k])
		}
	}
	return out.String()
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
