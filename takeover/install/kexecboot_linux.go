//go:build linux

package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nivis/nivis/internal/agent"
	"github.com/nivis/nivis/internal/exitcode"
	"github.com/nivis/nivis/kexec"
)

func serveKexecBoot(ctx context.Context, req *KexecBootRequest, ev *agent.Emitter) (*KexecBootResult, error) {
	ev.Step("kexec-load", "loading the installed kernel from "+req.Root)
	return LoadInstalledKernel(*req, "/proc/self/mountinfo", "/proc/cmdline", func(f string, a ...any) { ev.Logf("info", f, a...) })
}

// LoadInstalledKernel loads the newest kernel of the system mounted at
// req.Root, with root= naming its root filesystem by UUID, as the image
// the next kexec reboot starts.
func LoadInstalledKernel(req KexecBootRequest, mountinfo, cmdlinePath string, logf func(string, ...any)) (*KexecBootResult, error) {
	root := filepath.Clean(req.Root)
	if root == "/" || root == "." {
		return nil, exitcode.Errorf(exitcode.Usage, "kexec-boot: the installed system's root must be a mounted target such as /mnt, not %q", req.Root)
	}
	cmdline, err := installedCmdline(root, mountinfo, cmdlinePath)
	if err != nil {
		return nil, err
	}
	ks := kernels(root)
	if len(ks) == 0 {
		return nil, exitcode.Errorf(exitcode.Precondition, "kexec-boot: no /boot/vmlinuz-* in the installed system at %s", root)
	}
	k := ks[len(ks)-1]
	res := &KexecBootResult{Kernel: k[1], Initrd: k[2], Cmdline: "BOOT_IMAGE=" + k[1] + " " + cmdline}
	if req.Cmdline != "" {
		res.Cmdline += " " + req.Cmdline
	}
	initrd := ""
	if k[2] != "" {
		initrd = filepath.Join(root, k[2])
	}
	res.Method, err = kexec.Load(filepath.Join(root, k[1]), initrd, res.Cmdline, os.TempDir(), logf)
	if err != nil {
		return nil, exitcode.Wrap(exitcode.Precondition, fmt.Errorf("kexec-boot: %w (reboot without --kexec-boot instead)", err))
	}
	return res, nil
}

// installedCmdline is "root=UUID=... ro" for the filesystem mounted at
// root, plus the console= arguments of the running kernel, so the
// installed system talks on the console the host was booted with.
func installedCmdline(root, mountinfo, cmdlinePath string) (string, error) {
	mi, err := os.ReadFile(mountinfo)
	if err != nil {
		return "", err
	}
	src := ""
	for _, m := range ParseMountinfo(mi, root) {
		if m.Point == root {
			src = m.Source
		}
	}
	if src == "" {
		return "", exitcode.Errorf(exitcode.Precondition, "kexec-boot: nothing is mounted at %s", root)
	}
	uuid, err := FSUUID(src)
	if err != nil || uuid == "" {
		return "", exitcode.Errorf(exitcode.Precondition, "kexec-boot: the UUID of %s (mounted at %s): %v", src, root, err)
	}
	args := []string{"root=UUID=" + uuid, "ro"}
	if b, err := os.ReadFile(cmdlinePath); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if strings.HasPrefix(f, "console=") {
				args = append(args, f)
			}
		}
	}
	return strings.Join(args, " "), nil
}
