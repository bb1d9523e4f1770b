//go:build linux

package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nivis/nivis/internal/exitcode"
)

func TestInstalledCmdline(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is missing (e2fsprogs)")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "root.ext4")
	const uuid = "0b0e7c3a-5c4e-4a55-9a1f-2f7d7c1d9e01"
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-U", uuid, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "mnt")
	mi := filepath.Join(dir, "mountinfo")
	os.WriteFile(mi, []byte("22 1 0:21 / / rw - tmpfs rootfs rw\n"+
		"40 22 7:0 / "+root+" rw,relatime - ext4 "+img+" rw\n"+
		"41 40 7:1 / "+root+"/boot/efi rw - vfat /dev/vdb2 rw\n"), 0o644)
	cl := filepath.Join(dir, "cmdline")
	os.WriteFile(cl, []byte("console=tty0 nivis.rescue=1 console=ttyS0,115200 quiet\n"), 0o644)
	got, err := installedCmdline(root, mi, cl)
	if err != nil {
		t.Fatal(err)
	}
	if want := "root=UUID=" + uuid + " ro console=tty0 console=ttyS0,115200"; got != want {
		t.Errorf("cmdline %q, want %q", got, want)
	}
	// Nothing mounted there: a precondition error, not a guess.
	if _, err := installedCmdline(filepath.Join(dir, "elsewhere"), mi, cl); exitcode.Of(err) != exitcode.Precondition {
		t.Errorf("unmounted root: %v", err)
	}
	// No kernel in the installed system: refused before any kexec call.
	_, err = LoadInstalledKernel(KexecBootRequest{Root: root}, mi, cl, nil)
	if exitcode.Of(err) != exitcode.Precondition || !strings.Contains(err.Error(), "no /boot/vmlinuz-*") {
		t.Errorf("no kernel: %v", err)
	}
	if _, err := LoadInstalledKernel(KexecBootRequest{Root: "/"}, mi, cl, nil); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("root /: %v", err)
	}
}
