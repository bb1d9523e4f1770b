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
	"strings"
	"testing"

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
	cmds *RecordedCommands
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
	cmds := &RecordedCommands{Root: root, Output: map[string]string{
		"systemctl":  "● unit - status from the recorded systemctl\n   Active: failed (Result: exit-code)",
		"journalctl": "line 1 of the unit's journal\nline 2: the service crashed",
	}}
	th := &testHost{Host: &Host{Root: root, Systemd: sd, Cmd: cmds, ProbeSystemd: true}, sd: sd, cmds: cmds, t: t}
	th.StartWatcher = func(ctx context.Context, p *Pending) error { return nil }
	return th
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
