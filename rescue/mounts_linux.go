//go:build linux

package rescue

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/mountinfo"
)

// mountOp is one pseudo filesystem the rescue system needs.
type mountOp struct {
	Source, Target, FSType, Data string
	Flags                        uintptr
	Mode                         os.FileMode
}

func (m mountOp) String() string {
	return fmt.Sprintf("mount -t %s %s %s -o %s", m.FSType, m.Source, m.Target, m.Data)
}

// pseudoMounts is what the rescue system needs mounted. u-root's init
// mounts most of it (proc, sys, devtmpfs, devpts, /tmp) but not /run, and
// nothing here may depend on that staying so.
var pseudoMounts = []mountOp{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Mode: 0o555},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Mode: 0o555},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755", Mode: 0o755},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=620,gid=5", Mode: 0o755},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755", Mode: 0o755},
	{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777", Mode: 0o1777},
}

// efivarsMount is mounted on EFI machines: efibootmgr (bootloader
// install) needs the variables.
var efivarsMount = mountOp{Source: "efivarfs", Target: "/sys/firmware/efi/efivars", FSType: "efivarfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}

// missingMounts leaves out what mountinfo shows mounted already.
func missingMounts(want []mountOp, mounted map[string]string) []mountOp {
	var out []mountOp
	for _, m := range want {
		if fstype, ok := mounted[m.Target]; ok && fstype == m.FSType {
			continue
		}
		out = append(out, m)
	}
	return out
}

// parseMountinfo maps mount points to filesystem types.
func parseMountinfo(r io.Reader) map[string]string {
	data, _ := io.ReadAll(r)
	ms, _ := mountinfo.Parse(data) // a malformed line only costs that line
	out := map[string]string{}
	for _, m := range ms {
		out[m.Mountpoint] = m.FSType
	}
	return out
}

// mountPseudo mounts what is missing; failures are returned, not fatal.
func mountPseudo() (done []string, failures []string) {
	ownPTS := false
	mount := func(want []mountOp) {
		mounted := map[string]string{}
		if f, err := os.Open("/proc/self/mountinfo"); err == nil {
			mounted = parseMountinfo(f)
			f.Close()
		}
		for _, m := range missingMounts(want, mounted) {
			if m.Mode != 0 {
				_ = os.MkdirAll(m.Target, m.Mode)
			}
			if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", m, err))
				continue
			}
			done = append(done, m.String())
			ownPTS = ownPTS || m.FSType == "devpts"
		}
	}
	mount(pseudoMounts)
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		mount([]mountOp{efivarsMount})
	}
	// The devpts instance mounted here is a new one: /dev/ptmx must point
	// into it, or PTYs would come from another instance.
	if fi, err := os.Lstat("/dev/ptmx"); ownPTS && (err != nil || fi.Mode()&os.ModeSymlink == 0) {
		_ = os.Remove("/dev/ptmx")
		_ = os.Symlink("pts/ptmx", "/dev/ptmx")
	}
	return done, failures
}
