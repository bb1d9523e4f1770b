//go:build linux

package initramfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// requireRoot skips a root-only test, or fails it when root tests were
// asked for (NIVIS_REQUIRE_ROOT=1).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NIVIS_REQUIRE_ROOT") == "1" {
		t.Fatal("NIVIS_REQUIRE_ROOT=1 but not running as root")
	}
	t.Skip("needs root (chroot); run as root or with NIVIS_REQUIRE_ROOT=1 to require it")
}

func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed (run ./scripts/deps.sh): %v", path, err)
	}
}

func TestResolveMkfsExt4Libraries(t *testing.T) {
	requireTool(t, "/usr/sbin/mkfs.ext4")
	real, err := filepath.EvalSymlinks("/usr/sbin/mkfs.ext4")
	if err != nil {
		t.Fatal(err)
	}
	libs, err := NewLibResolver().Resolve(real)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]SharedObject{}
	for _, l := range libs {
		byName[filepath.Base(l.ImagePath)] = l
		if st, err := os.Stat(l.Source); err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s: source %s is not a regular file: %v", l.ImagePath, l.Source, err)
		}
		if fi, err := os.Lstat(l.Source); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s: source %s is a symlink, want it resolved", l.ImagePath, l.Source)
		}
	}
	// mke2fs links libext2fs, libcom_err, libblkid, libuuid, libe2p and libc.
	for _, want := range []string{"libext2fs.so.2", "libcom_err.so.2", "libblkid.so.1", "libuuid.so.1", "libe2p.so.2", "libc.so.6"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("%s not resolved; got %v", want, libs)
		}
	}
	// The interpreter keeps the exact PT_INTERP path, the kernel opens it by name.
	if libs[0].ImagePath != "/lib64/ld-linux-x86-64.so.2" && libs[0].ImagePath != "/lib/ld-linux-aarch64.so.1" {
		t.Errorf("first object %q, want the program interpreter", libs[0].ImagePath)
	}
	// Libraries land in their real directory, which ld.so searches without
	// a cache: /usr/lib/<triplet> on merged-/usr Debian.
	if l := byName["libc.so.6"]; !strings.HasPrefix(l.ImagePath, "/usr/lib/") && !strings.HasPrefix(l.ImagePath, "/lib") {
		t.Errorf("libc at %s", l.ImagePath)
	}
}

// TestResolvedLibrariesAreEnoughToRun copies mke2fs and what Resolve
// returned into an empty root and runs it there: nothing is missing.
func TestResolvedLibrariesAreEnoughToRun(t *testing.T) {
	requireTool(t, "/usr/sbin/mkfs.ext4")
	requireRoot(t)
	root := t.TempDir()
	real, _ := filepath.EvalSymlinks("/usr/sbin/mkfs.ext4")
	libs, err := NewLibResolver().Resolve(real)
	if err != nil {
		t.Fatal(err)
	}
	copyTo := func(dst, src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyTo("/usr/sbin/mke2fs", real)
	for _, l := range libs {
		copyTo(l.ImagePath, l.Source)
	}
	cmd := exec.Command("/usr/sbin/mke2fs", "-V")
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mke2fs in a root holding only the resolved libraries: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "mke2fs") {
		t.Errorf("unexpected output: %s", out)
	}
}
