//go:build linux

package rescue

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nivis/nivis/internal/mountinfo"
)

func (r *rescue) rebootRequested() {
	if r.log == nil || r.o.RebootRequest == "" {
		return
	}
	b, err := os.ReadFile(r.o.RebootRequest)
	if err != nil {
		r.log.Warnf("reboot request: %v", err)
		return
	}
	var req RebootRequest
	if err := json.Unmarshal(b, &req); err != nil {
		r.log.Warnf("reboot request: %v", err)
		return
	}
	what, cmd := "reboot", unix.LINUX_REBOOT_CMD_RESTART
	switch {
	case req.PowerOff:
		what, cmd = "power off", unix.LINUX_REBOOT_CMD_POWER_OFF
	case req.Kexec:
		what, cmd = "kexec into the loaded kernel", unix.LINUX_REBOOT_CMD_KEXEC
	}
	delay := time.Duration(max(req.DelaySeconds, 0)) * time.Second
	r.log.Infof("%s requested: in %s", what, delay)
	time.AfterFunc(delay, func() { r.reboot("requested by a client", cmd) })
}

// reboot unmounts disk filesystems, syncs and reboots (cmd is a
// LINUX_REBOOT_CMD_*: restart, power off or kexec). Plain reboot returns
// the host to its old system from its own disk.
func (r *rescue) reboot(why string, cmd int) {
	r.mu.Lock()
	if r.rebooting {
		r.mu.Unlock()
		return
	}
	r.rebooting = true
	r.mu.Unlock()
	r.log.Warnf("rebooting (%s)", why)
	for _, msg := range r.o.releaseDisks() {
		r.log.Warnf("reboot: %s", msg)
	}
	unix.Sync()
	for {
		err := r.o.Reboot(cmd)
		if err == nil {
			return // a test's Reboot returns; the kernel's does not
		}
		if cmd == unix.LINUX_REBOOT_CMD_KEXEC {
			r.log.Errorf("kexec reboot: %v; rebooting through the firmware instead", err)
			cmd = unix.LINUX_REBOOT_CMD_RESTART
			continue
		}
		r.log.Errorf("reboot: %v; trying again in 10s", err)
		time.Sleep(10 * time.Second)
	}
}

// releaseDisks turns swap off and unmounts (or remounts read-only) every
// filesystem on a block device, deepest first, so nothing is left dirty.
func releaseDisks() (problems []string) {
	if f, err := os.Open("/proc/swaps"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 0 && strings.HasPrefix(fields[0], "/") {
				if err := swapoff(fields[0]); err != nil {
					problems = append(problems, "swapoff "+fields[0]+": "+err.Error())
				}
			}
		}
		f.Close()
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return append(problems, err.Error())
	}
	ms, _ := mountinfo.Parse(data) // a malformed line only costs that line
	var targets []string
	for _, m := range ms {
		if strings.HasPrefix(m.Source, "/dev/") {
			targets = append(targets, m.Mountpoint)
		}
	}
	sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	for _, t := range targets {
		if err := unix.Unmount(t, 0); err != nil {
			if err2 := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err2 != nil {
				problems = append(problems, "unmount "+t+": "+err.Error()+"; read-only: "+err2.Error())
			}
		}
	}
	return problems
}

func swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}
