package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nivis/nivis/takeover/install"
)

func TestPairFlags(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"install", "--chown", "/home/a", "1000:100", "root@h"},
			[]string{"install", "--chown", "/home/a" + pairSep + "1000:100", "root@h"}},
		{[]string{"install", "--disk-encryption-keys", "/tmp/k", "./k", "--chown", "/x", "0:0", "h"},
			[]string{"install", "--disk-encryption-keys", "/tmp/k" + pairSep + "./k", "--chown", "/x" + pairSep + "0:0", "h"}},
		// The one-word forms stay as they are: the next word is the target.
		{[]string{"install", "--chown", "/home/a 1000:100", "root@h"},
			[]string{"install", "--chown", "/home/a 1000:100", "root@h"}},
		{[]string{"install", "--disk-encryption-keys", "/tmp/k ./k", "root@h"},
			[]string{"install", "--disk-encryption-keys", "/tmp/k ./k", "root@h"}},
		// A target after --chown's path is not an owner.
		{[]string{"install", "--chown", "/home/a", "root@h"},
			[]string{"install", "--chown", "/home/a", "root@h"}},
		{[]string{"install", "--", "--chown", "/a", "1:1"},
			[]string{"install", "--", "--chown", "/a", "1:1"}},
	}
	for _, c := range cases {
		if got := pairFlags(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("pairFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseChown(t *testing.T) {
	for in, want := range map[string]install.Chown{
		"/home/a" + pairSep + "1000:100": {Path: "/home/a", UID: 1000, GID: 100},
		"/home/a 1000:100":               {Path: "/home/a", UID: 1000, GID: 100},
		"/with space" + pairSep + "0:0":  {Path: "/with space", UID: 0, GID: 0},
	} {
		got, err := parseChown(in)
		if err != nil || got != want {
			t.Errorf("parseChown(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"/home/a", "/home/a alice", "/home/a" + pairSep + "a:b", ""} {
		if _, err := parseChown(bad); err == nil {
			t.Errorf("parseChown(%q) accepted", bad)
		}
	}
}

// The two-argument forms reach the install command's flags: a bad owner
// is a usage error (exit 2) before anything connects.
func TestInstallTwoArgumentFlags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "host.yaml")
	if err := os.WriteFile(filepath.Join(dir, "rootfs.tar"), make([]byte, 10240), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("apiVersion: nivis/v1alpha1\nkind: Host\nhostname: h\ndisko:\n  disk:\n    main:\n      type: disk\n      device: /dev/vdb\n      content:\n        type: gpt\n        partitions:\n          root:\n            size: 100%\n            content: {type: filesystem, format: ext4, mountpoint: /}\nsystem:\n  source: rootfs.tar\n  format: tar\nbootloader: none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--chown", "/a", "x:1"}, "--chown /a x:1: want PATH UID:GID"},
		{[]string{"--disk-encryption-keys", "/tmp/k", filepath.Join(dir, "missing.key")}, "--disk-encryption-keys /tmp/k " + filepath.Join(dir, "missing.key")},
		{[]string{"--disk-encryption-keys", "relative", filepath.Join(dir, "host.yaml")}, "REMOTE an absolute path"},
	} {
		var out, errb bytes.Buffer
		args := append(append([]string{"install", "-c", cfg}, c.args...), "root@127.0.0.1")
		code := Main(t.Context(), args, nil, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, want 2 and %q in stderr: %s", args, code, c.want, errb.String())
		}
	}
}
