//go:build linux

package install

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/exitcode"
)

// requireRoot skips a test that needs root, or fails it when
// NIVIS_REQUIRE_ROOT=1 says root-only tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and NIVIS_REQUIRE_ROOT=1")
	}
	t.Skip("needs root (ownership, device nodes, security.capability); run as root or with NIVIS_REQUIRE_ROOT=1")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// TestExtractGNUTar extracts an archive made by GNU tar from a tree with
// every kind of entry and compares the result with the source.
func TestExtractGNUTar(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no GNU tar")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	dst := filepath.Join(tmp, "dst")
	os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755)
	os.MkdirAll(filepath.Join(src, "home/user"), 0o750)
	os.MkdirAll(dst, 0o755)
	os.WriteFile(filepath.Join(src, "usr/bin/ping"), []byte("#!/bin/sh\necho ping\n"), 0o755)
	os.Chmod(filepath.Join(src, "usr/bin/ping"), 0o755)
	os.WriteFile(filepath.Join(src, "usr/bin/su"), []byte("su binary"), 0o755)
	unix.Chmod(filepath.Join(src, "usr/bin/su"), 0o6755)
	os.WriteFile(filepath.Join(src, "home/user/notes"), []byte("mine"), 0o600)
	os.Chown(filepath.Join(src, "home/user"), 1234, 5678)
	os.Chown(filepath.Join(src, "home/user/notes"), 1234, 5678)
	os.Link(filepath.Join(src, "usr/bin/ping"), filepath.Join(src, "usr/bin/ping6"))
	os.Symlink("/usr/bin/ping", filepath.Join(src, "usr/bin/abs-link"))
	os.Symlink("ping", filepath.Join(src, "usr/bin/rel-link"))
	run(t, "mkfifo", filepath.Join(src, "fifo"))
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(src, "usr/bin/ping"), "user.nivis", []byte("kept"), 0); err != nil {
		t.Skipf("filesystem without user xattrs: %v", err)
	}
	if _, err := exec.LookPath("setcap"); err == nil {
		run(t, "setcap", "cap_net_raw+ep", filepath.Join(src, "usr/bin/ping"))
	} else {
		// A v2 file capability: cap_net_raw (bit 13) permitted+effective.
		capv2 := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if err := unix.Setxattr(filepath.Join(src, "usr/bin/ping"), "security.capability", capv2, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A 64 MiB file with 8 KiB of data in the middle.
	sp, _ := os.Create(filepath.Join(src, "sparse.img"))
	sp.WriteAt(bytes.Repeat([]byte("x"), 8192), 32<<20)
	sp.Truncate(64 << 20)
	sp.Close()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "home/user/notes"), old, old)
	os.Chtimes(filepath.Join(src, "home/user"), old, old)

	archive := filepath.Join(tmp, "rootfs.tar")
	run(t, "tar", "--xattrs", "--xattrs-include=*", "--sparse", "--numeric-owner", "-cpf", archive, "-C", src, ".")
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := Extract(context.Background(), tar.NewReader(f), dst, ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files < 4 || st.Hardlinks != 1 || st.Symlinks != 2 || st.Nodes != 2 || st.Bytes < 8192 {
		t.Errorf("stats: %+v", st)
	}

	// Modes, setuid included, and owners.
	su := lstat(t, filepath.Join(dst, "usr/bin/su"))
	if su.Mode&0o7777 != 0o6755 {
		t.Errorf("su mode %o, want 6755", su.Mode&0o7777)
	}
	notes := lstat(t, filepath.Join(dst, "home/user/notes"))
	if notes.Uid != 1234 || notes.Gid != 5678 || notes.Mode&0o777 != 0o600 {
		t.Errorf("notes: uid %d gid %d mode %o", notes.Uid, notes.Gid, notes.Mode&0o777)
	}
	if got := time.Unix(notes.Mtim.Unix()); !got.Equal(old) {
		t.Errorf("notes mtime %v, want %v", got, old)
	}
	home := lstat(t, filepath.Join(dst, "home/user"))
	if home.Mode&0o777 != 0o750 || home.Uid != 1234 || !time.Unix(home.Mtim.Unix()).Equal(old) {
		t.Errorf("home/user: mode %o uid %d mtime %v", home.Mode&0o777, home.Uid, time.Unix(home.Mtim.Unix()))
	}
	// Hard link: same inode.
	if a, b := lstat(t, filepath.Join(dst, "usr/bin/ping")), lstat(t, filepath.Join(dst, "usr/bin/ping6")); a.Ino != b.Ino {
		t.Error("ping6 is not a hard link of ping")
	}
	for name, want := range map[string]string{"usr/bin/abs-link": "/usr/bin/ping", "usr/bin/rel-link": "ping"} {
		if got, err := os.Readlink(filepath.Join(dst, name)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
		}
	}
	if s := lstat(t, filepath.Join(dst, "fifo")); s.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Error("fifo is not a fifo")
	}
	if s := lstat(t, filepath.Join(dst, "null")); s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("null: mode %o rdev %d", s.Mode, s.Rdev)
	}
	// xattrs: user and file capability (set last, after chown).
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(dst, "usr/bin/ping"), "user.nivis", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("user.nivis: %q %v", buf[:n], err)
	}
	srcCap := make([]byte, 64)
	sn, _ := unix.Lgetxattr(filepath.Join(src, "usr/bin/ping"), "security.capability", srcCap)
	if n, err := unix.Lgetxattr(filepath.Join(dst, "usr/bin/ping"), "security.capability", buf); err != nil || !bytes.Equal(buf[:n], srcCap[:sn]) {
		t.Errorf("security.capability: %x %v, want %x", buf[:n], err, srcCap[:sn])
	}
	// Sparse: same content, few blocks.
	sps := lstat(t, filepath.Join(dst, "sparse.img"))
	if sps.Size != 64<<20 || sps.Blocks*512 > 1<<20 {
		t.Errorf("sparse.img: size %d, %d bytes allocated (want holes)", sps.Size, sps.Blocks*512)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "sparse.img"))
	want, _ := os.ReadFile(filepath.Join(src, "sparse.img"))
	if !bytes.Equal(got, want) {
		t.Error("sparse.img content differs")
	}
}

type entry struct {
	hdr  tar.Header
	body string
}

func tarBytes(t *testing.T, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func file(name, body string) entry { return entry{hdr: tar.Header{Name: name}, body: body} }
func dir(name string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}
func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}
func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func extractBytes(t *testing.T, root string, data []byte, opts ExtractOptions) (Stats, error) {
	t.Helper()
	return Extract(context.Background(), tar.NewReader(bytes.NewReader(data)), root, opts)
}

// TestExtractHostile feeds archives that try to write outside the root:
// each is refused (a usage error) and the sentinel directory beside the
// root, which every trick aims at, stays empty.
func TestExtractHostile(t *testing.T) {
	t.Run("openat2", testExtractHostile)
	t.Run("os.Root", func(t *testing.T) {
		noOpenat2 = true
		defer func() { noOpenat2 = false }()
		testExtractHostile(t)
		TestExtractReplacesSymlinks(t)
	})
}

func testExtractHostile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(sentinel string) []entry
	}{
		{"dotdot", func(string) []entry { return []entry{file("../sentinel/x", "pwned")} }},
		{"dotdot-inside", func(string) []entry { return []entry{file("etc/../../sentinel/x", "pwned")} }},
		{"absolute", func(s string) []entry { return []entry{file(s+"/x", "pwned")} }},
		{"abs-symlink-then-file", func(s string) []entry {
			return []entry{symlink("evil", s), file("evil/file", "pwned")}
		}},
		{"abs-symlink-to-tmp", func(string) []entry {
			return []entry{symlink("evil", "/tmp"), file("evil/nivis-pwned", "pwned")}
		}},
		{"relative-escape", func(string) []entry {
			return []entry{symlink("a", "../../.."), file("a/x", "pwned")}
		}},
		{"relative-to-sentinel", func(string) []entry {
			return []entry{symlink("a", "../sentinel"), file("a/x", "pwned")}
		}},
		{"nested-symlink", func(s string) []entry {
			return []entry{dir("d"), symlink("d/up", "../.."), file("d/up/sentinel/x", "pwned")}
		}},
		{"symlink-chain", func(s string) []entry {
			return []entry{symlink("l1", "l2"), symlink("l2", s), file("l1/x", "pwned")}
		}},
		{"hardlink-abs", func(string) []entry { return []entry{hardlink("passwd", "/etc/passwd")} }},
		{"hardlink-dotdot", func(string) []entry { return []entry{hardlink("passwd", "../../../../etc/passwd")} }},
		{"hardlink-through-symlink", func(string) []entry {
			return []entry{symlink("etc", "/etc"), hardlink("passwd", "etc/passwd")}
		}},
		{"dir-through-symlink", func(s string) []entry {
			return []entry{symlink("evil", s), dir("evil/sub")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			root := filepath.Join(tmp, "root")
			sentinel := filepath.Join(tmp, "sentinel")
			os.Mkdir(root, 0o755)
			os.Mkdir(sentinel, 0o755)
			_, err := extractBytes(t, root, tarBytes(t, tc.entries(sentinel)...), ExtractOptions{})
			var esc *EscapeError
			if err == nil || !errors.As(err, &esc) || exitcode.Of(err) != exitcode.Usage {
				t.Fatalf("got %v, want a refusal (usage error)", err)
			}
			if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
				t.Fatalf("something was written outside the root: %v", ents)
			}
			if _, err := os.Lstat("/tmp/nivis-pwned"); err == nil {
				os.Remove("/tmp/nivis-pwned")
				t.Fatal("wrote /tmp/nivis-pwned")
			}
			if _, err := os.Lstat(filepath.Join(root, "passwd")); err == nil {
				t.Fatal("a hard link to a file outside the root was made")
			}
		})
	}
}

// TestExtractReplacesSymlinks checks that an entry whose own name is a
// symlink replaces the link instead of writing through it.
func TestExtractReplacesSymlinks(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	sentinel := filepath.Join(tmp, "sentinel")
	os.Mkdir(root, 0o755)
	os.Mkdir(sentinel, 0o755)
	os.WriteFile(filepath.Join(sentinel, "f"), []byte("untouched"), 0o644)
	data := tarBytes(t,
		symlink("s", filepath.Join(sentinel, "f")), file("s", "inside"),
		symlink("d", sentinel), dir("d"),
		dir("usr/lib"), symlink("lib", "usr/lib"), file("lib/libc.so", "libc"), // relative links inside work
		symlink("etc/alternatives/editor", "/usr/bin/vim"),
	)
	if _, err := extractBytes(t, root, data, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(sentinel, "f")); string(b) != "untouched" {
		t.Fatalf("sentinel changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "s")); string(b) != "inside" {
		t.Fatalf("s = %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(root, "d")); err != nil || !fi.IsDir() {
		t.Fatalf("d is not a directory: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/lib/libc.so")); string(b) != "libc" {
		t.Fatalf("write through a relative in-root link failed: %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/alternatives/editor")); l != "/usr/bin/vim" {
		t.Fatalf("absolute symlink target not kept: %q", l)
	}
}

// TestExtractPlain runs without root: files, dirs created implicitly,
// modes, times, hard links, long names, progress.
func TestExtractPlain(t *testing.T) {
	root := t.TempDir()
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "ro"), 0o755) }) // for TempDir's removal when not root
	mt := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	long := strings.Repeat("d/", 60) + "leaf"
	data := tarBytes(t,
		entry{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
		entry{hdr: tar.Header{Name: "bin/tool", Mode: 0o750, ModTime: mt, Format: tar.FormatPAX}, body: "tool"},
		hardlink("bin/tool2", "./bin/tool"),
		entry{hdr: tar.Header{Name: "ro", Typeflag: tar.TypeDir, Mode: 0o555, ModTime: mt}},
		file("ro/inside", "x"),
		file(long, "deep"),
		file("bin/tool3", "first"), file("bin/tool3", "second"),
	)
	var calls int
	st, err := extractBytes(t, root, data, ExtractOptions{OnProgress: func(Stats) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 8 || st.Files != 5 || st.Hardlinks != 1 || st.Dirs != 2 {
		t.Errorf("stats %+v", st)
	}
	s := lstat(t, filepath.Join(root, "bin/tool"))
	if s.Mode&0o777 != 0o750 || s.Mtim.Nano() != mt.UnixNano() || s.Nlink != 2 {
		t.Errorf("bin/tool: mode %o mtime %d nlink %d", s.Mode&0o777, s.Mtim.Nano(), s.Nlink)
	}
	ro := lstat(t, filepath.Join(root, "ro"))
	if ro.Mode&0o777 != 0o555 || ro.Mtim.Sec != mt.Unix() { // ustar: whole seconds
		t.Errorf("ro: mode %o mtime %v (directory metadata is applied last)", ro.Mode&0o777, ro.Mtim)
	}
	if b, _ := os.ReadFile(filepath.Join(root, long)); string(b) != "deep" {
		t.Error("long name")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "bin/tool3")); string(b) != "second" {
		t.Error("a later entry must replace an earlier one")
	}
	if calls == 0 {
		t.Error("no progress reported")
	}
}

// TestExtractWhiteouts applies two layers the way an OCI runtime would.
func TestExtractWhiteouts(t *testing.T) {
	root := t.TempDir()
	l1 := tarBytes(t, dir("etc"), file("etc/a", "a"), file("etc/b", "b"), dir("opt/d"), file("opt/d/x", "x"), file("opt/d/y", "y"), dir("var/cache/big"), file("var/cache/big/f", "f"))
	l2 := tarBytes(t, file("etc/.wh.a", ""), dir("opt/d"), file("opt/d/z", "z"), file("opt/d/.wh..wh..opq", ""), file("var/cache/.wh.big", ""), file("new", "n"))
	opts := ExtractOptions{Whiteouts: true}
	if _, err := extractBytes(t, root, l1, opts); err != nil {
		t.Fatal(err)
	}
	st, err := extractBytes(t, root, l2, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Whiteouts != 3 {
		t.Errorf("whiteouts %d", st.Whiteouts)
	}
	checkLayered(t, root)
}

func checkLayered(t *testing.T, root string) {
	t.Helper()
	for p, want := range map[string]bool{"etc/a": false, "etc/b": true, "opt/d/x": false, "opt/d/y": false, "opt/d/z": true, "var/cache/big": false, "var/cache": true, "new": true, "etc/.wh.a": false, "opt/d/.wh..wh..opq": false} {
		_, err := os.Lstat(filepath.Join(root, p))
		if (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
}
